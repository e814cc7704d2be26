"""Oracle shortest-job-first: the upper bound a length predictor can hope to reach."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from policies.base import Policy, RequestView, true_length
from policies.registry import register


@register("sjf-oracle")
@dataclass
class SJFOracle(Policy):
    """Shortest true output length first (the LTR paper's oracle SJF; vllm-ltr `sjf`)."""

    requires: ClassVar[tuple[str, ...]] = ("output_tokens",)

    def key(self, r: RequestView, now_s: float) -> int:
        return true_length(r, self.name)

    def prepare(self, requests: Sequence[RequestView]) -> None:
        for r in requests:
            true_length(r, self.name)
