"""Arrival processes: when each request of a trace arrives, in seconds from the start.

- poisson: exponential gaps with mean 1/rate (the paper's 2 to 64 req/s).
- gamma: gamma gaps with mean 1/rate and coefficient of variation cv (shape 1/cv^2);
  cv > 1 is burstier than Poisson, cv < 1 smoother, cv = 1 is Poisson in law.
- burst: everything at t = 0 (the paper's burst of 2,000 requests).
- timestamps: the source's own times, shifted to start at 0 and multiplied by time_scale.
- stages: back-to-back stages of rate x duration, as load generators run them: stage i
  sends exactly round(rate_i * duration_i) requests between the end of stage i-1 and its
  own end, exponential gaps rescaled to span exactly duration_i.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from traces.errors import TraceError


@dataclass(frozen=True)
class Stage:
    """One stage of --stages: `rate` requests/s for `duration_s` seconds."""

    rate: float
    duration_s: float

    @property
    def requests(self) -> int:
        return round(self.rate * self.duration_s)


def parse_stages(text: str, flag: str = "--stages") -> tuple[Stage, ...]:
    """`8x600,20x600` -> stages; a TraceError naming the flag for anything else."""
    stages = []
    for i, item in enumerate(s.strip() for s in text.split(",")):
        rate, x, duration = item.lower().partition("x")
        try:
            stage = Stage(float(rate), float(duration)) if x else None
        except ValueError:
            stage = None
        if stage is None:
            raise TraceError(f"{flag}: expected RATExSECONDS[,RATExSECONDS...], got {item!r}")
        for name, value in (("rate", stage.rate), ("duration", stage.duration_s)):
            if not (math.isfinite(value) and value > 0):
                raise TraceError(f"{flag}: stage {i} ({item}): {name} must be > 0")
        if stage.requests < 1:
            raise TraceError(f"{flag}: stage {i} ({item}): rate x duration rounds to 0 requests")
        stages.append(stage)
    return tuple(stages)


@dataclass(frozen=True)
class ArrivalProcess:
    """Which process and its parameters; unused parameters stay None."""

    kind: str
    rate: float | None = None
    cv: float | None = None
    time_scale: float | None = None
    stages: tuple[Stage, ...] | None = None

    def meta(self) -> dict:
        """The process as recorded in the trace's metadata."""
        if self.kind == "stages":
            starts = np.cumsum([0.0] + [s.duration_s for s in self.stages])
            stages = [
                {"rate": s.rate, "duration_s": s.duration_s, "requests": s.requests, "start_s": t}
                for s, t in zip(self.stages, starts.tolist(), strict=False)
            ]
            return {"process": "stages", "stages": stages}
        params = {k: v for k, v in asdict(self).items() if v is not None and k != "kind"}
        meta = {"process": self.kind, **params}
        if self.kind == "gamma":
            meta["shape"] = 1.0 / self.cv**2
        return meta

    def stage_index(self) -> np.ndarray | None:
        """The 0-based stage of each request, in order, for a staged process."""
        if self.kind != "stages":
            return None
        return np.repeat(np.arange(len(self.stages)), [s.requests for s in self.stages])


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


def _stages(p: ArrivalProcess, n: int, rng: np.random.Generator, ts) -> np.ndarray:
    # As inference-perf's constant load (kubernetes-sigs/inference-perf,
    # inference_perf/loadgen/load_timer.py, ConstantLoadTimer, at 7de5ef2e): exponential
    # gaps of mean 1/rate, scaled so that they sum to the stage's duration, so the first
    # request lands one gap after the stage starts and the last at its end. It sends
    # int(rate * duration) requests; we round, so 0.29 x 100 gives 29, not 28.
    want = sum(s.requests for s in p.stages)
    if n != want:
        raise TraceError(f"--stages asks for {want:,} requests, but {n:,} are there to send")
    times, start = [], 0.0
    for stage in p.stages:
        gaps = rng.exponential(1.0 / stage.rate, stage.requests)
        within = np.minimum(np.cumsum(gaps * (stage.duration_s / gaps.sum())), stage.duration_s)
        within[-1] = stage.duration_s  # exactly, whatever the rounding of the sum
        times.append(start + within)
        start += stage.duration_s
    return np.concatenate(times)


PROCESSES: dict[str, Callable[..., np.ndarray]] = {
    "poisson": _poisson,
    "gamma": _gamma,
    "burst": _burst,
    "timestamps": _timestamps,
    "stages": _stages,
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
