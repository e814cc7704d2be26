"""A sweep spec: which trace(s), policies, engine settings, profiles and seeds to cross.

A spec is a YAML mapping; every list is an axis of the grid, every scalar a fixed value:

    name: sharegpt-rates               # optional; recorded in every row
    trace:                             # build a trace (the options of `ltrsched trace build`)
      source: sharegpt
      duration_s: 60
      rate: [8, 16, 32, 48, 64]        # each rate rebuilds the arrivals with the same seed
    # trace: {path: scored.parquet, rate: [16, 64]}   # or a trace file (re-timed if rate,
    #                                                 # cv or burst is given)
    policy:                            # policy specs; {key} takes each value of policy_params
      - fcfs
      - sjf-oracle:starvation={starvation},quantum={quantum}
      - approx-oracle:tau={tau},seed={seed}          # {seed}: the run's seed
    policy_params: {starvation: [50, 100, 200], quantum: [10], tau: [0.3, 0.5, 0.7]}
    engine: {max_num_seqs: [128, 256], engine_mode: ltr-paper}   # EngineConfig fields
    profile: null                      # bundled profile name or file; a list sweeps it
    seeds: [0, 1]                      # trace seed (arrivals, lengths) and EngineConfig.seed
    replicas: [1, 4]                   # a fleet of N replicas (default 1)
    router: [round-robin, least-loaded]  # router specs, needed when replicas > 1
    keep_requests: true                # per-request latencies for CDFs (default true)

A policy spec expands over the product of the policy_params it names and no other, so
`fcfs` above runs once per trace, engine, profile and seed. Every mistake is an
AnalysisError naming the key, e.g. `engine.max_num_seq: unknown key (did you mean
max_num_seqs?)`.
"""

from __future__ import annotations

import difflib
import math
import string
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from analysis.errors import AnalysisError
from sim.config import EngineConfig
from traces.config import BuildConfig

TOP_KEYS = (
    "name",
    "description",
    "trace",
    "policy",
    "policy_params",
    "engine",
    "profile",
    "seeds",
    "keep_requests",
    "replicas",
    "router",
)
# A trace file may be re-timed; these keys replace its arrivals.
FILE_TRACE_KEYS = ("path", "rate", "cv", "burst")
FILE_TRACE_TYPES: dict[str, Any] = {
    "path": str,
    "rate": float | None,
    "cv": float | None,
    "burst": bool,
}
# Set by the sweep itself, not by the spec: `seeds` gives the seed, traces need no text.
_BUILD_RESERVED = {"seed": "use the top-level `seeds` list", "keep_text": "traces keep no text"}
_ENGINE_RESERVED = {"seed": "use the top-level `seeds` list"}
SEED_PLACEHOLDER = "seed"


@dataclass(frozen=True)
class SweepSpec:
    """A parsed, type-checked sweep spec; every axis a tuple of one or more values."""

    name: str
    trace_kind: str  # "build" (BuildConfig options) or "file" (a trace file)
    trace: Mapping[str, tuple]
    policies: tuple[str, ...]
    policy_params: Mapping[str, tuple]
    engine: Mapping[str, tuple]
    profiles: tuple[str | None, ...]
    seeds: tuple[int, ...]
    keep_requests: bool = True
    where: str = "sweep spec"
    replicas: tuple[int, ...] = (1,)
    routers: tuple[str | None, ...] = (None,)

    def is_fleet(self) -> bool:
        """Whether the spec names replicas or routers (its rows then carry them)."""
        return self.replicas != (1,) or self.routers != (None,)


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check a YAML sweep spec; AnalysisError (naming the key) on any mistake."""
    path = Path(path)
    if not path.exists():
        raise AnalysisError(f"{path}: no such sweep spec")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise AnalysisError(f"{path}: not valid YAML{where}") from None
    return parse_spec(raw, where=str(path), default_name=path.stem)


def parse_spec(raw: Any, where: str = "sweep spec", default_name: str = "sweep") -> SweepSpec:
    """Check a spec mapping (as YAML gives it) and return the SweepSpec it describes."""
    if not isinstance(raw, Mapping):
        raise AnalysisError(f"{where}: expected a mapping of keys (trace, policy, ...)")
    _no_unknown(raw, TOP_KEYS, "", where)
    for key in ("trace", "policy"):
        if key not in raw:
            raise AnalysisError(f"{where}: {key}: missing (a sweep needs a trace and policies)")
    kind, trace = _trace(raw["trace"], where)
    policies = tuple(_axis(raw["policy"], "policy", str, where))
    params = _mapping(raw.get("policy_params"), "policy_params", where)
    policy_params = {
        k: tuple(_axis(v, f"policy_params.{k}", _SCALAR, where)) for k, v in params.items()
    }
    _check_placeholders(policies, policy_params, where)
    engine = _typed_mapping(raw.get("engine"), "engine", EngineConfig, _ENGINE_RESERVED, where)
    profiles = tuple(_axis(raw.get("profile"), "profile", str | None, where))
    seeds = tuple(_axis(raw.get("seeds", 0), "seeds", int, where))
    if any(s < 0 for s in seeds):
        raise AnalysisError(f"{where}: seeds: must be >= 0")
    keep = raw.get("keep_requests", True)
    if not isinstance(keep, bool):
        raise AnalysisError(f"{where}: keep_requests: expected true or false, got {keep!r}")
    name = raw.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise AnalysisError(f"{where}: name: expected a non-empty string")
    replicas = tuple(_axis(raw.get("replicas", 1), "replicas", int, where))
    if any(n < 1 for n in replicas):
        raise AnalysisError(f"{where}: replicas: must be >= 1")
    routers = tuple(_axis(raw.get("router"), "router", str | None, where))
    if max(replicas) > 1 and None in routers:
        raise AnalysisError(f"{where}: router: needed when replicas > 1 (e.g. least-loaded)")
    return SweepSpec(
        name,
        kind,
        trace,
        policies,
        policy_params,
        engine,
        profiles,
        seeds,
        keep,
        where,
        replicas,
        routers,
    )


_SCALAR = str | int | float | bool


def _trace(raw: Any, where: str) -> tuple[str, dict[str, tuple]]:
    if isinstance(raw, str):
        raw = {"path": raw}
    if not isinstance(raw, Mapping):
        raise AnalysisError(f"{where}: trace: expected a mapping (source: ... or path: ...)")
    if "source" not in raw and "path" in raw:
        _no_unknown(raw, FILE_TRACE_KEYS, "trace.", where)
        axes = {
            k: tuple(_axis(v, f"trace.{k}", FILE_TRACE_TYPES[k], where)) for k, v in raw.items()
        }
        return "file", axes
    if "source" not in raw:
        raise AnalysisError(f"{where}: trace: give source: (to build a trace) or path: (a file)")
    return "build", _typed_mapping(raw, "trace", BuildConfig, _BUILD_RESERVED, where)


def _typed_mapping(
    raw: Any, key: str, cls: type, reserved: dict[str, str], where: str
) -> dict[str, tuple]:
    """{field: (values...)} for a mapping onto the fields of dataclass cls, type-checked."""
    raw = _mapping(raw, key, where)
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in fields(cls) if f.name not in reserved]
    for k in raw:
        if k in reserved:
            raise AnalysisError(f"{where}: {key}.{k}: not allowed here ({reserved[k]})")
    _no_unknown(raw, valid, f"{key}.", where)
    return {k: tuple(_axis(v, f"{key}.{k}", hints[k], where)) for k, v in raw.items()}


def _mapping(raw: Any, key: str, where: str) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise AnalysisError(f"{where}: {key}: expected a mapping, got {_show(raw)}")
    bad = [k for k in raw if not isinstance(k, str)]
    if bad:
        raise AnalysisError(f"{where}: {key}: keys must be names, got {bad[0]!r}")
    return dict(raw)


def _no_unknown(raw: Mapping, valid, prefix: str, where: str) -> None:
    for k in raw:
        if k not in valid:
            close = difflib.get_close_matches(str(k), list(valid), n=1)
            hint = f"did you mean {close[0]}?" if close else f"valid: {', '.join(valid)}"
            raise AnalysisError(f"{where}: {prefix}{k}: unknown key ({hint})")


def _axis(raw: Any, key: str, hint: Any, where: str) -> list:
    """A scalar or a non-empty list, each value checked against the type hint."""
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        raise AnalysisError(f"{where}: {key}: empty list (give at least one value)")
    checked = [_check_value(v, key, hint, where) for v in values]
    seen = set()
    for v in checked:
        if (type(v), v) in seen:
            raise AnalysisError(f"{where}: {key}: value {v!r} listed twice")
        seen.add((type(v), v))
    return checked


def _check_value(value: Any, key: str, hint: Any, where: str) -> Any:
    """value, coerced (an int where a float is wanted) if it fits the hint."""
    allowed = typing.get_args(hint) if _is_union(hint) else (hint,)
    if value is None:
        if type(None) in allowed:
            return None
        raise AnalysisError(f"{where}: {key}: a value is required, got null")
    for t in allowed:
        if t is bool and isinstance(value, bool):
            return value
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if t is float and isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise AnalysisError(f"{where}: {key}: expected a finite number, got {value}")
            return float(value)
        if t is str and isinstance(value, str):
            return value
    names = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in allowed if t is not type(None))
    raise AnalysisError(f"{where}: {key}: expected {names}, got {_show(value)}")


_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true/false", str: "a string"}


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _show(value: Any) -> str:
    kind = (
        "a list"
        if isinstance(value, list)
        else "a mapping"
        if isinstance(value, Mapping)
        else type(value).__name__
    )
    return f"{value!r} ({kind})" if len(repr(value)) < 40 else kind


def placeholders(template: str) -> list[str]:
    """The {key} names in a policy template, in order ('{{' escapes a brace)."""
    try:
        return [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as e:
        raise AnalysisError(f"policy {template!r}: bad braces ({e})") from None


def _check_placeholders(policies: tuple[str, ...], params: Mapping[str, tuple], where: str) -> None:
    used: set[str] = set()
    for i, template in enumerate(policies):
        for name in placeholders(template):
            if not name.isidentifier():
                raise AnalysisError(f"{where}: policy[{i}]: bad placeholder {{{name}}}")
            if name != SEED_PLACEHOLDER and name not in params:
                raise AnalysisError(
                    f"{where}: policy[{i}]: {{{name}}} has no values (add policy_params.{name})"
                )
            used.add(name)
    for name in params:
        if name == SEED_PLACEHOLDER:
            raise AnalysisError(
                f"{where}: policy_params.seed: {{seed}} is the run's seed (set `seeds`)"
            )
        if name not in used:
            raise AnalysisError(f"{where}: policy_params.{name}: no policy spec uses {{{name}}}")
