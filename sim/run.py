"""simulate(): a trace, a policy, a profile and a config in; a finished run out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from policies import make_policy
from policies.base import Policy
from policies.views import in_policy_order, views_from_trace
from sim.config import EngineConfig
from sim.engine import Engine
from sim.errors import SimError
from sim.profile import StepTimeProfile, load_profile
from sim.results import requests_frame, summarize
from traces.fingerprint import FINGERPRINT_KEY, trace_fingerprint


@dataclass
class SimResult:
    requests: pd.DataFrame
    steps: pd.DataFrame
    summary: dict[str, Any]
    engine: Engine


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


def simulate(
    trace: pd.DataFrame,
    policy: str | Policy = "fcfs",
    profile: str | StepTimeProfile | None = None,
    config: EngineConfig | None = None,
    progress=None,
) -> SimResult:
    config = config or EngineConfig()
    config.validate()
    prof = profile if isinstance(profile, StepTimeProfile) else load_profile(profile)
    pol = policy if isinstance(policy, Policy) else make_policy(policy)
    blocks, how = resolve_num_gpu_blocks(config, prof)
    # A trace row order is arrival order; the engine keys requests by row index.
    trace = in_policy_order(trace)
    engine = Engine(views_from_trace(trace), pol, prof, config, blocks, progress=progress)
    engine.run()
    req = requests_frame(engine, trace["request_id"].to_numpy())
    steps = pd.DataFrame(engine.steps.frame_dict())
    summary = summarize(
        engine,
        req,
        {
            "policy": pol.describe(),
            "profile": prof.name,
            "profile_source": prof.source,
            "profile_label": prof.label,
            "num_gpu_blocks": blocks,
            "num_gpu_blocks_how": how,
            "engine": config.to_dict(),
            "stopped_early": engine.stopped_early,
            FINGERPRINT_KEY: trace_fingerprint(trace),
        },
    )
    return SimResult(req, steps, summary, engine)
