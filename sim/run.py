"""simulate(): a trace, a policy, a profile and a config in; a finished run out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from policies import make_policy
from policies.base import Policy
from policies.routing.base import Router
from policies.views import in_policy_order, views_from_trace
from sim.config import EngineConfig
from sim.engine import EngineCore
from sim.errors import SimError
from sim.fleet import Fleet, FleetConfig, ReplicaSpec, replica_policies
from sim.prefix_keys import block_keys
from sim.profile import StepTimeProfile, load_profile
from sim.request import SimRequest
from sim.results import FleetTotals, fleet_steps, fleet_summary, requests_frame, summarize
from traces.fingerprint import FINGERPRINT_KEY, trace_fingerprint
from traces.schema import HASH_BLOCK_TOKENS_KEY
from traces.sessions import next_turns


@dataclass
class SimResult:
    requests: pd.DataFrame
    steps: pd.DataFrame
    summary: dict[str, Any]
    engine: EngineCore  # replica 0
    fleet: Fleet | None = None


def resolve_num_gpu_blocks(config: EngineConfig, profile: StepTimeProfile) -> tuple[int, str]:
    """(blocks, how): given, from the profile's measured engine, or derived from memory."""
    if config.num_gpu_blocks is not None:
        return config.num_gpu_blocks, "given (--num-gpu-blocks)"
    measured = profile.engine.get("num_gpu_blocks")
    if measured:
        return int(measured), f"as vLLM reported it in the profile {profile.name}"
    if profile.memory is None:
        raise SimError(f"profile {profile.name} has no memory section; give --num-gpu-blocks")
    return (
        profile.memory.num_gpu_blocks(config.block_size),
        "derived: " + profile.memory.formula(config.block_size),
    )


def sessions(trace: pd.DataFrame) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(successor row or -1, think_s) per row of a trace in policy order; (None, None)
    without session columns."""
    succ = next_turns(trace)
    if succ is None:
        return None, None
    n = len(trace)
    think = trace["think_s"].to_numpy(np.float64) if "think_s" in trace.columns else np.zeros(n)
    return succ, think


@dataclass(frozen=True)
class Replica:
    """A replica as the user gives it: a profile (name, file or object) and engine
    limits; None: those of the run."""

    profile: str | StepTimeProfile | None = None
    config: EngineConfig | None = None


def replica_specs(
    replicas: int | Sequence[Replica],
    profile: StepTimeProfile,
    config: EngineConfig,
) -> list[ReplicaSpec]:
    """The fleet's replicas, each with its profile, limits and KV blocks resolved."""
    if isinstance(replicas, int):
        if replicas < 1:
            raise SimError(f"--replicas: must be >= 1, got {replicas}")
        given = [Replica(profile, config)] * replicas
    else:
        given = list(replicas)
        if not given:
            raise SimError("a fleet needs at least one replica")
    specs = []
    for rep in given:
        prof = rep.profile if rep.profile is not None else profile
        prof = prof if isinstance(prof, StepTimeProfile) else load_profile(prof)
        cfg = rep.config or config
        cfg.validate()
        blocks, how = resolve_num_gpu_blocks(cfg, prof)
        specs.append(ReplicaSpec(prof, cfg, blocks, how))
    for name in ("block_size", "stop_after", "prefix_caching_enabled"):
        vals = {_cfg_value(s.config, name) for s in specs}
        if len(vals) > 1:
            raise SimError(
                f"replicas must share {name.replace('_enabled', '')} (got {sorted(map(str, vals))})"
            )
    return specs


def _cfg_value(cfg: EngineConfig, name: str):
    v = getattr(cfg, name)
    return v() if callable(v) else v


def simulate(
    trace: pd.DataFrame,
    policy: str | Policy = "fcfs",
    profile: str | StepTimeProfile | None = None,
    config: EngineConfig | None = None,
    progress=None,
    hash_block_tokens: int | None = None,
    replicas: int | Sequence[Replica] = 1,
    router: str | Router | None = None,
    router_refresh_s: float = 0.0,
) -> SimResult:
    """hash_block_tokens: tokens per id of the trace's hash_ids column (its metadata key
    of that name; read from trace.attrs["hash_block_tokens"] when not given).
    replicas: how many copies of (profile, config), or each replica's own; router: a
    spec (policies.routing.registry) or a Router, needed for more than one replica;
    router_refresh_s: the router sees loads as of ticks this far apart (0: exact)."""
    config = config or EngineConfig()
    config.validate()
    prof = profile if isinstance(profile, StepTimeProfile) else load_profile(profile)
    pol = policy if isinstance(policy, Policy) else make_policy(policy)
    specs = replica_specs(replicas, prof, config)
    rt = _router(router) if router is not None else None
    # A trace row order is arrival order; the engine keys requests by row index.
    hbt = hash_block_tokens or trace.attrs.get(HASH_BLOCK_TOKENS_KEY)
    trace = in_policy_order(trace)
    keys = None
    first = specs[0].config
    if first.prefix_caching_enabled() and "hash_ids" in trace.columns:
        keys = block_keys(
            trace["hash_ids"].tolist(), trace["prompt_tokens"].to_numpy(), hbt, first.block_size
        )
    succ, think = sessions(trace)
    reqs = [SimRequest(i, v) for i, v in enumerate(views_from_trace(trace))]
    policies = (
        replica_policies(pol, len(specs))
        if isinstance(policy, Policy)
        else [pol] + [make_policy(policy) for _ in specs[1:]]
    )
    fleet = Fleet(
        reqs,
        policies,
        specs,
        rt,
        FleetConfig(router_refresh_s),
        keys=keys,
        successor=succ,
        think_s=think,
        session_id=trace["session_id"].to_numpy() if "session_id" in trace.columns else None,
        turn=trace["turn"].to_numpy() if "turn" in trace.columns else None,
        progress=progress,
    )
    fleet.run()
    req = requests_frame(fleet, trace["request_id"].to_numpy())
    req["replica"] = fleet.replica_of
    steps = fleet_steps(fleet)
    spec0 = specs[0]
    summary = summarize(
        FleetTotals(fleet),
        req,
        {
            "policy": pol.describe(),
            "profile": spec0.profile.name,
            "profile_source": spec0.profile.source,
            "profile_label": spec0.profile.label,
            "num_gpu_blocks": spec0.num_gpu_blocks,
            "num_gpu_blocks_how": spec0.num_gpu_blocks_how,
            "engine": spec0.config.to_dict(),
            "stopped_early": fleet.stopped_early,
            FINGERPRINT_KEY: trace_fingerprint(trace),
        },
    )
    summary["warnings"] = [*summary.get("warnings", []), *pol.notes()]
    if len(specs) > 1:
        summary.update(fleet_summary(fleet, req, steps))
    return SimResult(req, steps, summary, fleet.engines[0], fleet)


def _router(router: str | Router) -> Router:
    if isinstance(router, Router):
        return router
    from policies.routing.registry import make_router

    return make_router(router)
