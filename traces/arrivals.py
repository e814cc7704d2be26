"""Arrival processes: when each request of a trace arrives, in seconds from the start.

- poisson: exponential gaps with mean 1/rate (the paper's 2 to 64 req/s).
- gamma: gamma gaps with mean 1/rate and coefficient of variation cv (shape 1/cv^2);
  cv > 1 is burstier than Poisson, cv < 1 smoother, cv = 1 is Poisson in law.
- burst: everything at t = 0 (the paper's burst of 2,000 requests).
- timestamps: the source's own times, shifted to start at 0 and multiplied by time_scale.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from traces.errors import TraceError


@dataclass(frozen=True)
class ArrivalProcess:
    """Which process and its parameters; unused parameters stay None."""

    kind: str
    rate: float | None = None
    cv: float | None = None
    time_scale: float | None = None

    def meta(self) -> dict:
        """The process as recorded in the trace's metadata."""
        params = {k: v for k, v in asdict(self).items() if v is not None and k != "kind"}
        meta = {"process": self.kind, **params}
        if self.kind == "gamma":
            meta["shape"] = 1.0 / self.cv**2
        return meta


def _poisson(p: ArrivalProcess, n: int, rng: np.random.Generator, ts) -> np.ndarray:
    return np.cumsum(rng.exponential(1.0 / p.rate, n))


def _gamma(p: ArrivalProcess, n: int, rng: np.random.Generator, ts) -> np.ndarray:
    shape = 1.0 / p.cv**2
    return np.cumsum(rng.gamma(shape, 1.0 / (p.rate * shape), n))


def _burst(p: ArrivalProcess, n: int, rng: np.random.Generator, ts) -> np.ndarray:
    return np.zeros(n)


def _timestamps(p: ArrivalProcess, n: int, rng: np.random.Generator, ts) -> np.ndarray:
    if ts is None:
        raise TraceError("this source has no timestamps: give --rate or --burst")
    ts = np.asarray(ts, dtype=np.float64)
    return (ts - ts.min()) * p.time_scale if n else ts


PROCESSES: dict[str, Callable[..., np.ndarray]] = {
    "poisson": _poisson,
    "gamma": _gamma,
    "burst": _burst,
    "timestamps": _timestamps,
}


def arrival_times(
    process: ArrivalProcess,
    n: int,
    rng: np.random.Generator,
    timestamps: np.ndarray | None = None,
) -> np.ndarray:
    """n arrival times (float64 seconds, sorted for every generated process).

    `timestamps` (seconds, one per request) is used by the "timestamps" process only.
    """
    return np.asarray(PROCESSES[process.kind](process, n, rng, timestamps), dtype=np.float64)
