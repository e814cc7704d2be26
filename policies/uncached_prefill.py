"""Shortest uncached prefill first: a prefix-cache-aware baseline.

A request whose prompt is mostly in the prefix cache costs little to start; this policy
serves first the requests with the fewest tokens left to prefill. It reads
`cached_tokens`, which an engine that can probe its cache keeps current for waiting
requests (`probes_prefix_cache`), and which is the hit at first scheduling otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from policies.base import INF, Policy, RequestView
from policies.registry import register


@register("uncached-prefill")
@dataclass
class UncachedPrefill(Policy):
    """Fewest tokens to prefill first: prompt and generated tokens not in the prefix cache."""

    static_keys: ClassVar[bool] = False  # the cache changes while a request waits
    probes_prefix_cache: ClassVar[bool] = True

    def key(self, r: RequestView, now_s: float) -> int:
        return r.prompt_tokens + r.tokens_generated - r.cached_tokens

    def horizon(
        self, waiting: Sequence[RequestView], running: Sequence[RequestView], now_s: float
    ) -> tuple[float, float]:
        # Each step's allocations may evict what a waiting request would hit: no promise.
        return (0.0, 0.0) if waiting else (INF, INF)
