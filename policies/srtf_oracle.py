"""Oracle shortest-remaining-time-first: SJF that also lets a nearly finished request stay."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from policies.base import Policy, RequestView, true_length
from policies.registry import register


@register("srtf-oracle")
@dataclass
class SRTFOracle(Policy):
    """Fewest true remaining output tokens first (the LTR paper's oracle SRTF; vllm-ltr `srtf`).

    A waiting request generates nothing, so its key is static (static_keys stays True);
    a running request's key drops by one per token, so engines must re-key running
    requests at every decision point. Running requests only gain on waiting ones, which
    cannot change what runs, so horizon() is (inf, inf).
    """

    requires: ClassVar[tuple[str, ...]] = ("output_tokens",)

    def key(self, r: RequestView, now_s: float) -> int:
        return true_length(r, self.name) - r.tokens_generated

    def prepare(self, requests: Sequence[RequestView]) -> None:
        for r in requests:
            true_length(r, self.name)
