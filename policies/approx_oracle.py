"""An oracle degraded to a chosen Kendall's tau, to draw latency against predictor quality."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import ClassVar

import numpy as np

from policies.base import Policy, PolicyError, RequestView, true_length
from policies.registry import param, register

_NORMAL = NormalDist()
_TOLERANCE = 0.005  # stop the search this close to the target (the promise is 0.01)


@register("approx-oracle")
@dataclass
class ApproxOracle(Policy):
    """Shortest noisy true length first, the noise set to reach a target Kendall's tau.

    The paper plots latency against tau; vllm-ltr reaches a tau by shuffling a share of
    the true lengths (benchmarks/benchmark_serving_real.py, `approx-sjf`). Here the key
    is log(1 + L) + sigma * z, z a standard normal drawn per (seed, request_id), and
    prepare() bisects sigma until scipy's kendalltau (tau-b) over the trace is within
    0.01 of tau (a trace of a few hundred requests or more gets there). tau=1 is the
    true order; tau < 0 reverses it (longest first). Records sigma and achieved_tau.
    """

    tau: float | None = param(None, "target Kendall's tau against the true lengths, -1..1")
    seed: int = param(0, "seed of the per-request noise")
    sigma: float = field(default=0.0, init=False, compare=False)
    achieved_tau: float = field(default=math.nan, init=False, compare=False)

    requires: ClassVar[tuple[str, ...]] = ("output_tokens",)

    def __post_init__(self) -> None:
        if self.tau is None or not -1.0 <= self.tau <= 1.0:
            raise PolicyError(f"approx-oracle needs tau= in [-1, 1], got {self.tau}")
        self._prepared = False
        self._z: dict[int, float] = {}

    def noise(self, request_id: int) -> float:
        """z for one request: a hash of (seed, request_id), so no request shifts another's."""
        z = self._z.get(request_id)
        if z is None:
            text = f"{self.seed}:{request_id}".encode()
            digest = hashlib.blake2b(text, digest_size=8).digest()
            z = self._z[request_id] = _NORMAL.inv_cdf(
                (int.from_bytes(digest, "big") + 0.5) / 2.0**64
            )
        return z

    def prepare(self, requests: Sequence[RequestView]) -> None:
        lengths = np.array([true_length(r, self.name) for r in requests], dtype=float)
        x = np.log1p(lengths)
        z = np.array([self.noise(r.request_id) for r in requests])
        self.sigma = _calibrate(x, z, lengths, abs(self.tau))
        self._prepared = True
        keys = [self.key(r, 0.0) for r in requests]
        self.achieved_tau = _tau(np.array(keys, dtype=float), lengths)

    def key(self, r: RequestView, now_s: float) -> float:
        if not self._prepared:
            raise PolicyError("approx-oracle needs prepare() on the trace to set its noise")
        x = math.log1p(true_length(r, self.name))
        z = self.noise(r.request_id)
        value = z if math.isinf(self.sigma) else x + self.sigma * z
        return value if self.tau >= 0 else -value


def _tau(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2:
        return math.nan
    from scipy.stats import kendalltau  # here: scipy.stats takes 0.7 s to import

    return float(kendalltau(a, b).statistic)


def _calibrate(x: np.ndarray, z: np.ndarray, lengths: np.ndarray, target: float) -> float:
    """The sigma whose tau(x + sigma z, lengths) is nearest target (inf: noise alone)."""
    if target >= 1.0 or math.isnan(_tau(x, lengths)):
        return 0.0
    if target <= _tau(z, lengths):
        return math.inf
    lo, hi = 1e-6, 1.0
    while _tau(x + hi * z, lengths) > target and hi < 1e9:
        lo, hi = hi, hi * 2.0
    best, best_err = hi, math.inf
    for _ in range(100):  # bisection on log(sigma): tau falls as sigma grows
        mid = math.sqrt(lo * hi)
        tau = _tau(x + mid * z, lengths)
        if abs(tau - target) < best_err:
            best, best_err = mid, abs(tau - target)
        if best_err <= _TOLERANCE:
            break
        lo, hi = (mid, hi) if tau > target else (lo, mid)
    return best
