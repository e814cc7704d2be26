"""Distribution-aware policies: the Gittins index and SERPT over a predicted length
distribution (the dist_<name>_NN features of policies/lengthdist.py).

Both read the request's distribution once, keep its reverse cumulative sums per
request id (policies/dist_math.py), and then rank by its age, the tokens generated so
far: a key costs O(log NUM_BINS) to find the age's bin plus O(NUM_BINS) for the Gittins
index (O(1) for SERPT), and a repeated key at the same age is a dictionary lookup. Per
engine step that is O(NUM_BINS) for each running request (their age moves) and nothing
for waiting ones. The cache holds about 3 KB per request of a run.

Keys: a waiting request generates nothing, so its key is static (static_keys stays
True), as srtf-oracle's is; running requests are re-keyed by the engines. Unlike
SRTF's, a running request's key can get worse: when its age reaches a support point
with mass, that mass is gone and its index drops (or its expected remaining length
jumps). horizon() therefore ends where the first running request would fall behind a
waiting one that is now behind it; between support points a running request's index
only rises (SERPT: only falls), so no earlier step can change which requests run.
The order among running requests may change inside that horizon (gittins: their
indices rise at different rates; serpt: one's expected remaining length jumps up at a
support point while another's falls); both engines re-key running requests whenever they
use that order (vLLM V1 mode: preemption; paper mode: every explicit step), and a
steady batch runs all of them whatever their order, so no decision depends on it.
A horizon costs O(waiting) cached keys plus, per running request, a scan of its keys at
the support points ahead (O(NUM_BINS^2) once per request to tabulate them, vectorised).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from policies.base import INF, Policy, PolicyError, RequestView
from policies.dist_math import MAX_GRID_TOKENS, LengthDist, next_point
from policies.lengthdist import DIST_PREFIX, SUPPORT_TOKENS, dist_columns, dist_names
from policies.registry import param, register, state

_SUPPORT_LIST = SUPPORT_TOKENS.tolist()

# A waiting key within this relative distance of a running one's future key counts as
# passed: horizons err on the early side, never late.
_HORIZON_RTOL = 1e-9


@dataclass(slots=True)
class _Entry:
    """One request's distribution, with the features it was read from and its last key."""

    features: Mapping[str, float]
    dist: LengthDist
    age: int = -1
    value: float = 0.0
    at_support: list[float] | None = None  # key values at ages = support points


@dataclass
class DistributionPolicy(Policy):
    """Shared machinery: read the distribution, cache it, key by age, the horizon."""

    dist: str | None = param(None, "distribution to read, dist_<dist>_NN (default: the only one)")
    cache: dict[int, _Entry] = state()

    def __post_init__(self) -> None:
        self._dist: str | None = self.dist

    # --- what a subclass defines: a key value (lower = served first) from the distribution
    def value(self, d: LengthDist, age: int) -> float:
        raise NotImplementedError

    def values_at_support(self, d: LengthDist) -> np.ndarray:
        raise NotImplementedError

    def tail_value(self, age: int) -> float:
        """The key past all the mass at an age that is a grid point."""
        raise NotImplementedError

    # --- the contract
    @property
    def requires(self) -> tuple[str, ...]:  # type: ignore[override]
        return (f"features:{DIST_PREFIX}{self._dist or '*'}_*",)

    def params(self) -> dict[str, Any]:
        return {"dist": self._dist}

    def prepare(self, requests: Sequence[RequestView]) -> None:
        self.cache.clear()
        names = sorted({n for r in requests for n in dist_names(r.features)})
        if self.dist is None:
            self._dist = self._only_distribution(names)
        for r in requests:
            self._read(r, names)

    def key(self, r: RequestView, now_s: float) -> float:
        e = self._entry(r)
        age = r.tokens_generated
        if e.age != age:
            e.age, e.value = age, self.value(e.dist, age)
        return e.value

    def horizon(
        self, waiting: Sequence[RequestView], running: Sequence[RequestView], now_s: float
    ) -> tuple[float, float]:
        """Steps until a running request's key, at its next support point, would be no
        better than that of the best waiting request now behind it (see the module doc)."""
        if not waiting or not running:
            return (INF, INF)
        behind = [(self._cached_key(w, now_s), w.arrival_s, w.request_id) for w in waiting]
        best = min(behind)
        ordered: list[tuple[float, float, int]] | None = None
        steps = INF
        for r in running:
            own = (self._cached_key(r, now_s), r.arrival_s, r.request_id)
            if own < best:
                threshold = best[0]
            else:  # behind some waiting request already: only those behind it count
                if ordered is None:
                    ordered = sorted(behind)
                i = bisect_right(ordered, own)
                if i == len(ordered):
                    continue
                threshold = ordered[i][0]
            steps = min(steps, self._steps_until(r, threshold))
        return (steps, INF)

    # --- helpers
    def forget(self, request_id: int) -> None:
        self.cache.pop(request_id, None)

    def _cached_key(self, r: RequestView, now_s: float) -> float:
        e = self.cache.get(r.request_id)
        if e is not None and e.age == r.tokens_generated and e.features is r.features:
            return e.value
        return self.key(r, now_s)

    def _steps_until(self, r: RequestView, threshold: float) -> float:
        """Tokens until r's key first reaches threshold (within the tolerance), checked
        at the support and grid points above its age, where alone it can get worse."""
        e = self._entry(r)
        age = r.tokens_generated
        limit = threshold - _HORIZON_RTOL * abs(threshold)
        if e.at_support is None:
            e.at_support = self.values_at_support(e.dist).tolist()
        for k in range(e.dist.first_above(age), len(e.at_support)):
            if e.at_support[k] >= limit:
                return _SUPPORT_LIST[k] - age
        point = next_point(max(age, _SUPPORT_LIST[-1]))
        while point < MAX_GRID_TOKENS:
            if self.tail_value(point) >= limit:
                return point - age
            point = next_point(point)
        return INF

    def _entry(self, r: RequestView) -> _Entry:
        e = self.cache.get(r.request_id)
        if e is None or e.features is not r.features:
            if self._dist is None:  # not prepared: resolve from the first request seen
                self._dist = self._only_distribution(dist_names(r.features))
            e = self._read(r, None)
        return e

    def _read(self, r: RequestView, names: list[str] | None) -> _Entry:
        try:
            probs = np.array([r.features[c] for c in dist_columns(self._dist)], np.float64)
        except KeyError:
            names = dist_names(r.features) if names is None else names
            raise PolicyError(
                f"{self.name}: distribution {self._dist!r} missing (request {r.request_id}); "
                f"distributions: {', '.join(names) or 'none'}"
            ) from None
        try:
            d = LengthDist.from_probs(probs)
        except ValueError as err:
            raise PolicyError(
                f"{self.name}: distribution {self._dist!r} of request {r.request_id}: {err}"
            ) from None
        e = self.cache[r.request_id] = _Entry(r.features, d)
        return e

    def _only_distribution(self, names: list[str]) -> str:
        if len(names) != 1:
            raise PolicyError(
                f"{self.name}: give dist=, the requests have {len(names)} complete "
                f"distributions ({DIST_PREFIX}<name>_00..): {', '.join(names) or 'none'}"
            )
        return names[0]


@register("gittins")
@dataclass
class Gittins(DistributionPolicy):
    """Highest Gittins index of the predicted length distribution first, given the age.

    G(a) = max over thresholds x > a of P(X <= x | X > a) / E[min(X, x) - a | X > a]:
    optimal mean response time for a single preemptive server when lengths are drawn
    from the given distributions. On a point mass it is 1/remaining, i.e. SRPT.
    """

    def value(self, d: LengthDist, age: int) -> float:
        return -d.gittins(age)

    def values_at_support(self, d: LengthDist) -> np.ndarray:
        return -d.gittins_at_support()

    def tail_value(self, age: int) -> float:
        return -1.0 / (next_point(age) - age)


@register("serpt")
@dataclass
class SERPT(DistributionPolicy):
    """Shortest expected remaining processing time first: E[X - a | X > a], a = age.

    The mean of the predicted distribution, conditioned on the tokens already generated;
    unlike the Gittins index it ignores the spread (a long tail raises the mean as much
    as a likely long length).
    """

    def value(self, d: LengthDist, age: int) -> float:
        return d.serpt(age)

    def values_at_support(self, d: LengthDist) -> np.ndarray:
        return d.serpt_at_support()

    def tail_value(self, age: int) -> float:
        return float(next_point(age) - age)
