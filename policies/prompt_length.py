"""Shortest prompt first: a predictor-free length proxy, to show what a predictor adds."""

from __future__ import annotations

from dataclasses import dataclass

from policies.base import Policy, RequestView
from policies.registry import register


@register("prompt-length")
@dataclass
class PromptLength(Policy):
    """Shortest prompt first: prompt length as a free proxy for output length (a baseline)."""

    def key(self, r: RequestView, now_s: float) -> int:
        return r.prompt_tokens
