"""Token-length distributions for synthetic traces, named on the command line.

A spec is `name:key=value,...`, e.g. `lognormal:mu=5,sigma=1`, `uniform:low=1,high=512`,
`fixed:128`, `zipf:a=1.5`, `resample:path=trace.parquet` (draws that trace's column).
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
    "resample": DistSpec(("path",), _resample),
}


@dataclass(frozen=True)
class LengthDist:
    """A parsed spec: `sample(rng, size)` draws token lengths >= 1."""

    spec: str
    name: str
    params: dict = field(hash=False)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return DISTRIBUTIONS[self.name].sample(rng, size, self.params)


def parse_length_dist(spec: str, flag: str, column: str) -> LengthDist:
    """Parse `spec` given to `flag`; `column` is what `resample` draws from its trace."""
    name, _, rest = spec.partition(":")
    name = name.strip().lower()
    if name not in DISTRIBUTIONS:
        known = ", ".join(DISTRIBUTIONS)
        raise TraceError(f"{flag}: unknown distribution {name!r} (known: {known})")
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
