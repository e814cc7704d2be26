"""Prefix-cache affinity: send a request where its prompt's prefix is already cached."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from policies.registry import param
from policies.routing.base import PrefixProbe, ReplicaLoad, Router, RouteRequest, RouterError
from policies.routing.load import dp_load_score, least_loaded
from policies.routing.registry import register_router


@register_router("prefix")
@dataclass
class PrefixAffinity(Router):
    """The replica caching the longest prefix of the prompt, else the least loaded.

    Mirrors SGLang's cache-aware router (sgl-project/sglang, sgl-router/src/policies/
    cache_aware.rs): when the fleet is imbalanced (max - min load > balance_abs and
    max > balance_rel x min) it goes to the least-loaded replica; otherwise to the best
    prefix match if its share of the prompt exceeds min_hit (SGLang's cache_threshold).
    Unlike SGLang's approximate radix tree of what it sent, the hit is read from each
    replica's own KV cache (PrefixProbe), as llm-d's precise, KV-event-driven scorer does.
    Load is vLLM's DP score (waiting x 4 + running); ties on the hit go to the less loaded
    replica, then the lowest index; no hit above min_hit goes least-loaded.
    """

    min_hit: float = param(0.0, "follow the cache only if the best hit share > this")
    balance_abs: int | None = param(
        None, "least-loaded when max - min load score > this (none: never)"
    )
    balance_rel: float = param(1.0, "... and max load score > this x min load score")

    uses_prefix_cache: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_hit < 1.0:
            raise RouterError(f"prefix: min_hit must be in [0, 1), got {self.min_hit}")
        if self.balance_abs is not None and self.balance_abs < 0:
            raise RouterError(f"prefix: balance_abs must be >= 0, got {self.balance_abs}")
        if self.balance_rel < 0:
            raise RouterError(f"prefix: balance_rel must be >= 0, got {self.balance_rel}")

    def imbalanced(self, replicas: Sequence[ReplicaLoad]) -> bool:
        """SGLang's test: both the absolute and the relative load gap pass their thresholds."""
        if self.balance_abs is None:
            return False
        scores = [dp_load_score(r) for r in replicas]
        high, low = max(scores), min(scores)
        return high - low > self.balance_abs and high > self.balance_rel * low

    def route(
        self,
        request: RouteRequest,
        replicas: Sequence[ReplicaLoad],
        probe: PrefixProbe,
        now_s: float,
    ) -> int:
        if self.imbalanced(replicas):
            return least_loaded(replicas)
        rid = request.view.request_id
        hits = [probe.cached_prefix_tokens(r.replica, rid) for r in replicas]
        best = max(hits)
        prompt_tokens = request.view.prompt_tokens
        share = best / prompt_tokens if prompt_tokens > 0 else 0.0
        if best <= 0 or share <= self.min_hit:
            return least_loaded(replicas)
        return least_loaded(replicas, among=[i for i, hit in enumerate(hits) if hit == best])
