"""llm-d's endpoint picker: weighted scorers, each in [0, 1], and the highest sum wins."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from policies.base import RequestView
from policies.registry import param
from policies.routing.base import PrefixProbe, ReplicaLoad, Router, RouteRequest, RouterError
from policies.routing.registry import register_router

# Sums within this of the best count as ties (then the lowest index wins), so that
# float rounding in w1*s1 + w2*s2 never decides between replicas.
TIE_TOLERANCE = 1e-9


def prefix_scores(
    request: RouteRequest, replicas: Sequence[ReplicaLoad], probe: PrefixProbe
) -> list[float]:
    """Hit tokens / prompt tokens per replica: the Gateway API inference extension's
    prefix-cache scorer (matched blocks / prompt blocks, kubernetes-sigs/
    gateway-api-inference-extension, pkg/epp/scheduling/framework/plugins/multi/prefix/
    plugin.go), read exactly from each replica's cache."""
    prompt_tokens = request.view.prompt_tokens
    if prompt_tokens <= 0:
        return [0.0] * len(replicas)
    rid = request.view.request_id
    return [min(1.0, probe.cached_prefix_tokens(r.replica, rid) / prompt_tokens) for r in replicas]


def queue_scores(replicas: Sequence[ReplicaLoad]) -> list[float]:
    """(max waiting - waiting) / (max - min) per replica, 1 for all when all are equal:
    the extension's queue scorer (pkg/epp/scheduling/framework/plugins/scorer/queue.go)."""
    waiting = [r.waiting for r in replicas]
    high, low = max(waiting), min(waiting)
    if high == low:
        return [1.0] * len(replicas)
    return [(high - w) / (high - low) for w in waiting]


def kv_scores(replicas: Sequence[ReplicaLoad]) -> list[float]:
    """1 - KV-cache utilisation per replica: the extension's kv-cache-utilization scorer
    (pkg/epp/scheduling/framework/plugins/scorer/kvcache_utilization.go)."""
    return [1.0 - r.kv_utilization for r in replicas]


@register_router("weighted")
@dataclass
class WeightedScorers(Router):
    """llm-d's filter-score-pick: weighted prefix, queue, KV and session scores; max wins.

    Each scorer gives every replica a score in [0, 1]; the replica with the highest
    weighted sum wins, the lowest index on ties (llm-d's max-score picker breaks ties at
    random). The defaults are llm-d's default profile: queue-scorer 2,
    kv-cache-utilization-scorer 2, prefix-cache-scorer 3 (llm-d/llm-d, guides/
    inference-scheduling/scheduler/inference-scheduling.values.yaml; the same in the
    extension's chart, config/charts/inferencepool/templates/epp-config.yaml; checked
    2026-12). `session` mirrors llm-d's session-affinity scorer
    (llm-d/llm-d-inference-scheduler, deploy/config/session-affinity-config.yaml): 1 on
    the replica that served the session's previous turn. No filter: every replica serves
    both prefill and decode here.
    """

    prefix: float = param(3.0, "weight of prefix-cache: hit tokens / prompt tokens")
    queue: float = param(2.0, "weight of queue depth: (max - waiting) / (max - min)")
    kv: float = param(2.0, "weight of KV-cache room: 1 - used blocks / total blocks")
    session: float = param(0.0, "weight of session affinity: 1 where its last turn went")

    _last_replica: dict[int, int] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for name, weight in self.weights().items():
            if weight < 0:
                raise RouterError(f"weighted: {name} weight must be >= 0, got {weight}")
        if not any(self.weights().values()):
            raise RouterError("weighted: give at least one weight > 0 (prefix, queue, kv, session)")

    @property
    def uses_prefix_cache(self) -> bool:  # type: ignore[override]
        return self.prefix > 0

    def weights(self) -> dict[str, float]:
        return {"prefix": self.prefix, "queue": self.queue, "kv": self.kv, "session": self.session}

    def prepare(self, requests: Sequence[RequestView], num_replicas: int) -> None:
        self._last_replica.clear()

    def scores(
        self, request: RouteRequest, replicas: Sequence[ReplicaLoad], probe: PrefixProbe
    ) -> dict[str, list[float]]:
        """Every scorer with a weight > 0: its score per replica, each in [0, 1]."""
        out: dict[str, list[float]] = {}
        if self.prefix > 0:
            out["prefix"] = prefix_scores(request, replicas, probe)
        if self.queue > 0:
            out["queue"] = queue_scores(replicas)
        if self.kv > 0:
            out["kv"] = kv_scores(replicas)
        if self.session > 0:
            last = self._last_replica.get(request.session_id, -1)
            out["session"] = [1.0 if i == last else 0.0 for i in range(len(replicas))]
        return out

    def totals(
        self, request: RouteRequest, replicas: Sequence[ReplicaLoad], probe: PrefixProbe
    ) -> list[float]:
        """The weighted sum per replica."""
        weights = self.weights()
        totals = [0.0] * len(replicas)
        for name, per_replica in self.scores(request, replicas, probe).items():
            for i, score in enumerate(per_replica):
                totals[i] += weights[name] * score
        return totals

    def route(
        self,
        request: RouteRequest,
        replicas: Sequence[ReplicaLoad],
        probe: PrefixProbe,
        now_s: float,
    ) -> int:
        totals = self.totals(request, replicas, probe)
        best = max(totals)
        index = next(i for i, t in enumerate(totals) if t >= best - TIE_TOLERANCE)
        if request.session_id >= 0:
            self._last_replica[request.session_id] = index
        return index
