"""Routers that look only at load: round-robin and vLLM's data-parallel balancer."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from policies.base import RequestView
from policies.routing.base import PrefixProbe, ReplicaLoad, Router, RouteRequest
from policies.routing.registry import register_router

# vLLM's DP balancer weighs a waiting request 4x a running one
# (vllm/v1/engine/core_client.py, DPLBAsyncMPClient.get_core_engine_for_request).
WAITING_WEIGHT = 4


def dp_load_score(replica: ReplicaLoad) -> int:
    """vLLM's data-parallel balancer score: waiting x 4 + running (lower = less loaded)."""
    return WAITING_WEIGHT * replica.waiting + replica.running


def least_loaded(replicas: Sequence[ReplicaLoad], among: Iterable[int] | None = None) -> int:
    """Index of the replica (of `among`, default all) with the lowest dp_load_score,
    the lowest index on ties."""
    indices = range(len(replicas)) if among is None else among
    return min(indices, key=lambda i: (dp_load_score(replicas[i]), i))


@register_router("round-robin")
@dataclass
class RoundRobin(Router):
    """The k-th dispatched request goes to replica k mod N, whatever the replicas' state."""

    _dispatched: int = field(default=0, init=False, repr=False, compare=False)

    def prepare(self, requests: Sequence[RequestView], num_replicas: int) -> None:
        self._dispatched = 0

    def route(
        self,
        request: RouteRequest,
        replicas: Sequence[ReplicaLoad],
        probe: PrefixProbe,
        now_s: float,
    ) -> int:
        index = self._dispatched % len(replicas)
        self._dispatched += 1
        return index


@register_router("least-loaded")
@dataclass
class LeastLoaded(Router):
    """Lowest waiting x 4 + running, lowest index on ties: vLLM's data-parallel balancer.

    vLLM (vllm/v1/engine/core_client.py, DPLBAsyncMPClient) scores each engine core by the
    waiting and running counts its coordinator publishes about every 100 ms and counts a
    request it sends as waiting until the next refresh; the fleet hands this router such
    counts (ReplicaLoad.waiting includes dispatched requests not yet seen).
    """

    def route(
        self,
        request: RouteRequest,
        replicas: Sequence[ReplicaLoad],
        probe: PrefixProbe,
        now_s: float,
    ) -> int:
        return least_loaded(replicas)
