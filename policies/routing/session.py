"""Session affinity: a conversation's turns stay on one replica, whose cache holds it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from policies.base import RequestView
from policies.registry import param
from policies.routing.base import PrefixProbe, ReplicaLoad, Router, RouteRequest, RouterError
from policies.routing.load import dp_load_score, least_loaded
from policies.routing.registry import register_router


@register_router("session")
@dataclass
class SessionAffinity(Router):
    """Later turns of a session go where its first went, unless that replica is overloaded.

    The first turn the router sees of a session (and every request without one) goes to
    the least-loaded replica (vLLM's DP score, waiting x 4 + running); later turns go to
    the session's replica unless its score exceeds the least-loaded one's by more than
    max_imbalance, in which case the turn goes least-loaded and the session moves there.
    llm-d's session-affinity scorer (llm-d/llm-d-inference-scheduler, deploy/config/
    session-affinity-config.yaml) pins a session by cookie and leaves load to other
    scorers; the threshold here is our own, so that a hot session cannot sink a replica.
    """

    max_imbalance: int = param(8, "move when its replica's load score tops the lowest by more")

    _home: dict[int, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_imbalance < 0:
            raise RouterError(f"session: max_imbalance must be >= 0, got {self.max_imbalance}")

    def prepare(self, requests: Sequence[RequestView], num_replicas: int) -> None:
        self._home.clear()

    def route(
        self,
        request: RouteRequest,
        replicas: Sequence[ReplicaLoad],
        probe: PrefixProbe,
        now_s: float,
    ) -> int:
        lightest = least_loaded(replicas)
        if request.session_id < 0:
            return lightest
        home = self._home.get(request.session_id)
        if home is not None and home < len(replicas):
            gap = dp_load_score(replicas[home]) - dp_load_score(replicas[lightest])
            if gap <= self.max_imbalance:
                return home
        self._home[request.session_id] = lightest
        return lightest
