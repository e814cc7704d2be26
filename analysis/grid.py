"""A sweep spec expanded into runs, each with a run_id that is a stable hash of its parameters.

The run_id is what makes a sweep resumable: the same parameters give the same id in any
order, process or machine, so a rerun skips the ids already in the results. Policies are
hashed in their canonical form (`Policy.describe()`, defaults spelled out), so two
spellings of one policy are one run; trace files by content, not by path.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.engine_config import engine_config
from analysis.errors import AnalysisError
from analysis.spec import SEED_PLACEHOLDER, SweepSpec, placeholders
from policies import PolicyError, make_policy
from policies.base import format_param
from sim.errors import SimError
from sim.profile import StepTimeProfile, load_profile
from traces.config import BuildConfig
from traces.errors import TraceError


@dataclass(frozen=True)
class TraceTask:
    """One trace of the sweep: build options (kind "build") or a file to read and re-time."""

    trace_id: str
    kind: str
    options: Mapping[str, Any]
    seed: int

    def columns(self) -> dict[str, Any]:
        """The trace's parameters as result columns (trace_rate, trace_source, ...)."""
        return {f"trace_{k}": v for k, v in self.options.items()}


@dataclass(frozen=True)
class RunTask:
    """One simulation: a trace, a policy spec, engine settings, a profile and a seed."""

    run_id: str
    trace_id: str
    policy: str  # as written in the spec, placeholders filled
    policy_template: str
    engine: Mapping[str, Any]
    profile: str | None
    seed: int
    sweep: str
    keep_requests: bool
    columns: Mapping[str, Any] = field(default_factory=dict)
    replicas: int = 1
    router: str | None = None  # a router spec (policies.routing), None: one plain server


@dataclass(frozen=True)
class Grid:
    """All runs of a spec, and the traces they need (by trace_id)."""

    runs: tuple[RunTask, ...]
    traces: Mapping[str, TraceTask]


def stable_id(params: Mapping[str, Any]) -> str:
    """12 hex digits of sha256 over the canonical JSON of params."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes: a trace file is identified by what it holds."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def expand(spec: SweepSpec) -> Grid:
    """Every run of the spec, in a stable order; AnalysisError for a value the engine,
    policy registry or trace builder rejects (checked once here, before any run)."""
    traces = _trace_tasks(spec)
    policies = [(t, p) for t in spec.policies for p in _fill(t, spec.policy_params)]
    engines = [
        dict(zip(spec.engine, vals, strict=True))
        for vals in itertools.product(*spec.engine.values())
    ]
    # Hashed as resolved (spec, else profile, else default), so a default spelled out in
    # the spec is the same run as one left out.
    resolved = {}
    for prof in spec.profiles:
        loaded = _load_profile(prof, spec.where)
        for i, e in enumerate(engines):
            resolved[prof, i] = _check_engine(e, loaded, spec.where)
    fleets = [(n, _canonical_router(r, spec.where)) for n in spec.replicas for r in spec.routers]
    runs = []
    for seed in spec.seeds:
        for trace in traces[seed]:
            for prof in spec.profiles:
                for i, engine in enumerate(engines):
                    for fleet in fleets:
                        for template, filled in policies:
                            runs.append(
                                _run(
                                    spec,
                                    trace,
                                    template,
                                    filled,
                                    engine,
                                    resolved[prof, i],
                                    prof,
                                    seed,
                                    fleet,
                                )
                            )
    unique = {r.run_id: r for r in runs}
    all_traces = {t.trace_id: t for ts in traces.values() for t in ts}
    return Grid(tuple(unique.values()), all_traces)


def _fill(template: str, params: Mapping[str, tuple]) -> list[str]:
    """The template with every combination of the params it names (seed filled later)."""
    names = [n for n in dict.fromkeys(placeholders(template)) if n != SEED_PLACEHOLDER]
    out = []
    for values in itertools.product(*(params[n] for n in names)):
        subst = {n: format_param(v) for n, v in zip(names, values, strict=True)}
        subst[SEED_PLACEHOLDER] = "{seed}"
        out.append(template.format(**subst))
    return out


def _run(
    spec: SweepSpec,
    trace: TraceTask,
    template: str,
    filled: str,
    engine: dict,
    resolved: dict,
    profile: str | None,
    seed: int,
    fleet: tuple[int, str | None] = (1, None),
) -> RunTask:
    policy = filled.replace("{seed}", str(seed))
    try:
        canonical = make_policy(policy).describe()
    except PolicyError as e:
        raise AnalysisError(f"{spec.where}: policy {policy!r}: {e}") from None
    replicas, router = fleet
    ident = {
        "trace": trace.trace_id,
        "policy": canonical,
        "engine": resolved,
        "profile": profile,
        "seed": seed,
    }
    if fleet != (1, None):  # single-server runs keep the ids they always had
        ident.update(replicas=replicas, router=router)
    run_id = stable_id(ident)
    columns = {
        "sweep": spec.name,
        "run_id": run_id,
        "trace_id": trace.trace_id,
        **trace.columns(),
        "policy": policy,
        "policy_template": template,
        "profile": profile,
        "seed": seed,
        **engine,
    }
    if spec.is_fleet():
        columns.update(replicas=replicas, router=router or "")
    return RunTask(
        run_id,
        trace.trace_id,
        policy,
        template,
        engine,
        profile,
        seed,
        spec.name,
        spec.keep_requests,
        columns,
        replicas,
        router,
    )


def _canonical_router(router: str | None, where: str) -> str | None:
    """A router spec in its canonical form (defaults spelled out), checked once here."""
    if router is None:
        return None
    from policies.routing.registry import make_router

    try:
        return make_router(router).describe()
    except PolicyError as e:
        raise AnalysisError(f"{where}: router {router!r}: {e}") from None


def _trace_tasks(spec: SweepSpec) -> dict[int, list[TraceTask]]:
    """{seed: [TraceTask...]}: the product of the trace axes, under each seed."""
    combos = [
        dict(zip(spec.trace, vals, strict=True)) for vals in itertools.product(*spec.trace.values())
    ]
    digests: dict[str, str] = {}
    out: dict[int, list[TraceTask]] = {}
    for seed in spec.seeds:
        tasks = []
        for opts in combos:
            if spec.trace_kind == "build":
                _check_build(opts, seed, spec.where)
                ident = {"build": opts, "seed": seed}
            else:
                path = opts["path"]
                if path not in digests:
                    if not Path(path).is_file():
                        raise AnalysisError(f"{spec.where}: trace.path: no such file: {path}")
                    digests[path] = file_digest(path)
                retimed = any(opts.get(k) not in (None, False) for k in ("rate", "cv", "burst"))
                timing = {k: v for k, v in opts.items() if k != "path"}
                ident = {"file": digests[path], **timing, "seed": seed if retimed else None}
            tasks.append(TraceTask(stable_id(ident), spec.trace_kind, opts, seed))
        out[seed] = tasks
    return out


def _check_build(opts: Mapping[str, Any], seed: int, where: str) -> None:
    try:
        BuildConfig(**opts, seed=seed, keep_text=False).validate()
    except TraceError as e:
        raise AnalysisError(f"{where}: trace: {e}") from None


def _check_engine(engine: Mapping[str, Any], profile: StepTimeProfile, where: str) -> dict:
    """The EngineConfig a run will use (without its seed), or an AnalysisError."""
    try:
        cfg = engine_config(engine, profile, seed=0).to_dict()
        cfg.pop("seed")
        return cfg
    except SimError as e:
        raise AnalysisError(f"{where}: engine: {e}") from None


def _load_profile(profile: str | None, where: str) -> StepTimeProfile:
    try:
        return load_profile(profile)
    except (SimError, FileNotFoundError) as e:
        raise AnalysisError(f"{where}: profile: {e}") from None
