"""Token-length and think-time distributions, named on the command line.

A spec is `name:key=value,...`, e.g. `lognormal:mu=5,sigma=1`, `uniform:low=1,high=512`,
`fixed:128`, `zipf:a=1.5`, `exponential:mean=200`, `resample:path=trace.parquet` (draws
that trace's column). Lengths are whole tokens >= 1. Think times (--think-dist) are
seconds >= 0 from `fixed:5`, `uniform:low=1,high=10`, `exponential:mean=5` or
`lognormal:mu=1,sigma=0.5`, not rounded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from traces.errors import TraceError

Sampler = Callable[[np.random.Generator, int, dict], np.ndarray]


@dataclass(frozen=True)
class DistSpec:
    """A distribution's parameters and how to draw from it."""

    required: tuple[str, ...]
    sample: Sampler
    check: Callable[[dict], str] = lambda p: ""  # returns a complaint, or ""


def _fixed(rng: np.random.Generator, size: int, p: dict) -> np.ndarray:
    return np.full(size, int(p["n"]), dtype=np.int64)


def _uniform(rng: np.random.Generator, size: int, p: dict) -> np.ndarray:
    return rng.integers(int(p["low"]), int(p["high"]), size=size, endpoint=True)


def _lognormal(rng: np.random.Generator, size: int, p: dict) -> np.ndarray:
    return np.maximum(1, np.rint(rng.lognormal(p["mu"], p["sigma"], size))).astype(np.int64)


def _zipf(rng: np.random.Generator, size: int, p: dict) -> np.ndarray:
    return rng.zipf(p["a"], size).astype(np.int64)


def _exponential(rng: np.random.Generator, size: int, p: dict) -> np.ndarray:
    return np.maximum(1, np.rint(rng.exponential(p["mean"], size))).astype(np.int64)


def _resample(rng: np.random.Generator, size: int, p: dict) -> np.ndarray:
    return rng.choice(p["values"], size=size, replace=True).astype(np.int64)


def _whole(*keys: str) -> Callable[[dict], str]:
    def check(p: dict) -> str:
        bad = [k for k in keys if not (float(p[k]).is_integer() and p[k] >= 1)]
        return f"{bad[0]} must be a whole number >= 1" if bad else ""

    return check


def _check_uniform(p: dict) -> str:
    return _whole("low", "high")(p) or ("low must be <= high" if p["low"] > p["high"] else "")


DISTRIBUTIONS: dict[str, DistSpec] = {
    "fixed": DistSpec(("n",), _fixed, _whole("n")),
    "uniform": DistSpec(("low", "high"), _uniform, _check_uniform),
    "lognormal": DistSpec(
        ("mu", "sigma"), _lognormal, lambda p: "" if p["sigma"] > 0 else "sigma must be > 0"
    ),
    "zipf": DistSpec(("a",), _zipf, lambda p: "" if p["a"] > 1 else "a must be > 1"),
    "exponential": DistSpec(
        ("mean",), _exponential, lambda p: "" if p["mean"] > 0 else "mean must be > 0"
    ),
    "resample": DistSpec(("path",), _resample),
}


def _at_least_zero(*keys: str) -> Callable[[dict], str]:
    def check(p: dict) -> str:
        bad = [k for k in keys if not p[k] >= 0]
        return f"{bad[0]} must be >= 0" if bad else ""

    return check


def _check_time_uniform(p: dict) -> str:
    return _at_least_zero("low", "high")(p) or (
        "low must be <= high" if p["low"] > p["high"] else ""
    )


TIME_DISTRIBUTIONS: dict[str, DistSpec] = {
    "fixed": DistSpec(("s",), lambda rng, size, p: np.full(size, p["s"]), _at_least_zero("s")),
    "uniform": DistSpec(
        ("low", "high"),
        lambda rng, size, p: rng.uniform(p["low"], p["high"], size),
        _check_time_uniform,
    ),
    "exponential": DistSpec(
        ("mean",),
        lambda rng, size, p: rng.exponential(p["mean"], size),
        lambda p: "" if p["mean"] > 0 else "mean must be > 0",
    ),
    "lognormal": DistSpec(
        ("mu", "sigma"),
        lambda rng, size, p: rng.lognormal(p["mu"], p["sigma"], size),
        lambda p: "" if p["sigma"] > 0 else "sigma must be > 0",
    ),
}


@dataclass(frozen=True)
class LengthDist:
    """A parsed spec: `sample(rng, size)` draws token lengths >= 1."""

    spec: str
    name: str
    params: dict = field(hash=False)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return DISTRIBUTIONS[self.name].sample(rng, size, self.params)


@dataclass(frozen=True)
class TimeDist:
    """A parsed think-time spec: `sample(rng, size)` draws seconds >= 0 (float64)."""

    spec: str
    name: str
    params: dict = field(hash=False)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return np.asarray(TIME_DISTRIBUTIONS[self.name].sample(rng, size, self.params), float)


def parse_time_dist(spec: str, flag: str) -> TimeDist:
    """Parse a think-time `spec` given to `flag`."""
    name, rest = _name(spec, flag, TIME_DISTRIBUTIONS)
    dist = TIME_DISTRIBUTIONS[name]
    params = _parse_params(rest, dist.required, flag, name)
    complaint = dist.check(params)
    if not all(np.isfinite(list(params.values()))):
        complaint = "parameters must be finite"
    if complaint:
        raise TraceError(f"{flag}: {name}: {complaint}")
    return TimeDist(spec, name, params)


def _name(spec: str, flag: str, known: dict) -> tuple[str, str]:
    name, _, rest = spec.partition(":")
    name = name.strip().lower()
    if name not in known:
        raise TraceError(f"{flag}: unknown distribution {name!r} (known: {', '.join(known)})")
    return name, rest


def parse_length_dist(spec: str, flag: str, column: str) -> LengthDist:
    """Parse `spec` given to `flag`; `column` is what `resample` draws from its trace."""
    name, rest = _name(spec, flag, DISTRIBUTIONS)
    dist = DISTRIBUTIONS[name]
    params = _parse_params(rest, dist.required, flag, name)
    if name == "resample":
        params["values"] = _trace_column(str(params["path"]), params.pop("column", column), flag)
    complaint = dist.check(params)
    if complaint:
        raise TraceError(f"{flag}: {name}: {complaint}")
    return LengthDist(spec, name, params)


def _parse_params(text: str, required: tuple[str, ...], flag: str, name: str) -> dict:
    params: dict = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, eq, value = item.partition("=")
        if not eq and len(required) == 1:
            key, value = required[0], item  # `fixed:128` means n=128
        elif not eq:
            raise TraceError(f"{flag}: {name}: expected key=value, got {item!r}")
        params[key.strip()] = value.strip()
    unknown = sorted(set(params) - set(required) - ({"column"} if name == "resample" else set()))
    missing = [k for k in required if k not in params]
    if unknown or missing:
        want = ", ".join(f"{k}=..." for k in required)
        raise TraceError(f"{flag}: {name} takes {want}")
    if name == "resample":
        return params
    try:
        return {k: float(v) for k, v in params.items()}
    except ValueError:
        raise TraceError(f"{flag}: {name}: parameters must be numbers, got {text!r}") from None


def _trace_column(path: str, column: str, flag: str) -> np.ndarray:
    from traces.io import read_trace

    df, _ = read_trace(path)
    if column not in df.columns:
        raise TraceError(f"{flag}: {path}: no column {column!r}")
    return df[column].to_numpy(dtype=np.int64)
