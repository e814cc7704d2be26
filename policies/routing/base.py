"""The router contract: which replica of a fleet serves a request.

A router is written once and drives both the simulated fleet (sim/fleet.py) and a live
fleet of vLLM engines (live/). The front end hands it each request as it is dispatched,
with every replica's load as the router may see it (exact, or as of the last refresh of
a stale signal, as vLLM's data-parallel balancer refreshes about every 100 ms), and a
probe into the replicas' prefix caches; it returns a replica index. Ties are broken by
the lowest replica index, never by dict or heap order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from policies.base import PolicyError, RequestView, spec_string


class RouterError(PolicyError):
    """A user mistake in a router spec (unknown name, bad parameter)."""


@dataclass(frozen=True, slots=True)
class ReplicaLoad:
    """One replica as a router sees it at `as_of_s` (the time of its latest refresh)."""

    replica: int
    waiting: int  # queued requests: waiting + swapped (+ dispatched, not yet seen)
    running: int  # requests holding a seat (max_num_seqs)
    kv_blocks_used: int
    num_gpu_blocks: int
    as_of_s: float

    @property
    def kv_utilization(self) -> float:
        return self.kv_blocks_used / self.num_gpu_blocks if self.num_gpu_blocks else 0.0


class PrefixProbe(Protocol):
    """What a replica's prefix cache holds, read exactly (as llm-d's KV-event scorer)."""

    def cached_prefix_tokens(self, replica: int, request_id: int) -> int:
        """Leading prompt tokens of the request that `replica` would hit if admitted now."""
        ...


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """A request as it is dispatched: its policy view, and its session if it has one."""

    view: RequestView
    session_id: int = -1  # -1: no session
    turn: int = 0


class Router:
    """Base class of routers. Subclasses are dataclasses whose init fields declared with
    policies.registry.param are their spec parameters; they set `name` via the routing
    registry and override `route`."""

    name: ClassVar[str] = "base"
    # Fields of RequestView the router needs ("output_tokens", "features:<col>").
    requires: ClassVar[tuple[str, ...]] = ()
    # True: the router reads PrefixProbe (the fleet then answers from replicas' caches).
    uses_prefix_cache: ClassVar[bool] = False

    def prepare(self, requests: Sequence[RequestView], num_replicas: int) -> None:  # noqa: B027
        """Called once before a run with every request of the trace (optional)."""

    def route(
        self,
        request: RouteRequest,
        replicas: Sequence[ReplicaLoad],
        probe: PrefixProbe,
        now_s: float,
    ) -> int:
        """The replica (index into `replicas`) that serves `request`."""
        raise NotImplementedError

    def on_finish(self, request_id: int, replica: int, now_s: float) -> None:  # noqa: B027
        """The request finished (or was rejected) on `replica` (optional bookkeeping)."""

    def params(self) -> dict[str, Any]:
        from policies.registry import params_of

        return {k: getattr(self, k) for k in params_of(type(self))}

    def describe(self) -> str:
        """The spec string that rebuilds this router."""
        return spec_string(self.name, self.params())

    def __repr__(self) -> str:
        return f"<Router {self.describe()}>"
