"""First come, first served: the baseline every other policy is measured against."""

from __future__ import annotations

from dataclasses import dataclass

from policies.base import Policy, RequestView
from policies.registry import register


@register("fcfs")
@dataclass
class FCFS(Policy):
    """Arrival order, as vLLM's default `fcfs` scheduling policy serves requests."""

    def key(self, r: RequestView, now_s: float) -> float:
        return r.arrival_s
