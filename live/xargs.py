"""What rides with each request to the plug-in, in `SamplingParams.extra_args`.

Flat keys, because the OpenAI server's `vllm_xargs` takes only str/int/float values:
  ltrsched.request_id, ltrsched.arrival_s (trace clock), ltrsched.output_tokens (true
  length, for oracles), ltrsched.f.<column> (a numeric feature, e.g. ltrsched.f.score_opt),
and the run they belong to: ltrsched.run (id), ltrsched.policy (spec), ltrsched.trace
(a trace file the plug-in reads for Policy.prepare), ltrsched.step_log (JSONL path),
ltrsched.t0 (the driver's time.monotonic() at trace time 0).
The nested form {"ltrsched": {"request_id": ..., "features": {...}, ...}} is read too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PREFIX = "ltrsched."
FEATURE = PREFIX + "f."


@dataclass(frozen=True)
class RequestTag:
    """One request's identity and features, as the trace knows them."""

    request_id: int | None = None
    arrival_s: float | None = None
    output_tokens: int | None = None
    features: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RunTag:
    """The replay a request belongs to; a new run id makes the plug-in start afresh."""

    run: str | None = None
    policy: str | None = None
    trace: str | None = None
    step_log: str | None = None
    t0: float | None = None


def encode(tag: RequestTag, run: RunTag) -> dict[str, Any]:
    """The flat extra_args / vllm_xargs mapping for one request."""
    out: dict[str, Any] = {}
    for key, value in (
        ("request_id", tag.request_id), ("arrival_s", tag.arrival_s),
        ("output_tokens", tag.output_tokens), ("run", run.run), ("policy", run.policy),
        ("trace", run.trace), ("step_log", run.step_log), ("t0", run.t0),
    ):
        if value is not None:
            out[PREFIX + key] = value
    for col, value in tag.features.items():
        out[FEATURE + col] = float(value)
    return out


def with_arrival(xargs: Mapping[str, Any], arrival_s: float) -> dict[str, Any]:
    """A request's flat mapping with its arrival moved to arrival_s (a session's later
    turn arrives when it is sent, not at its traced time)."""
    return {**xargs, PREFIX + "arrival_s": arrival_s}


def decode(extra_args: Mapping[str, Any] | None) -> tuple[RequestTag, RunTag]:
    """Read a request's tags from extra_args (flat or nested form); missing keys are None."""
    flat = _flatten(extra_args or {})
    features = {k[len(FEATURE):]: _float(v) for k, v in flat.items() if k.startswith(FEATURE)}
    tag = RequestTag(
        request_id=_int(flat.get(PREFIX + "request_id")),
        arrival_s=_float(flat.get(PREFIX + "arrival_s")),
        output_tokens=_int(flat.get(PREFIX + "output_tokens")),
        features={k: v for k, v in features.items() if v is not None},
    )
    run = RunTag(
        run=_str(flat.get(PREFIX + "run")),
        policy=_str(flat.get(PREFIX + "policy")),
        trace=_str(flat.get(PREFIX + "trace")),
        step_log=_str(flat.get(PREFIX + "step_log")),
        t0=_float(flat.get(PREFIX + "t0")),
    )
    return tag, run


def _flatten(extra: Mapping[str, Any]) -> dict[str, Any]:
    flat = {k: v for k, v in extra.items() if isinstance(k, str) and k.startswith(PREFIX)}
    nested = extra.get("ltrsched")
    if isinstance(nested, Mapping):
        for k, v in nested.items():
            if k == "features" and isinstance(v, Mapping):
                flat.update({FEATURE + str(c): x for c, x in v.items()})
            else:
                flat[PREFIX + str(k)] = v
    return flat


def _float(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def _int(v: Any) -> int | None:
    x = _float(v)
    return None if x is None else int(x)


def _str(v: Any) -> str | None:
    return None if v is None or v == "" else str(v)
