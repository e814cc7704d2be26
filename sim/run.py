"""simulate(): a trace, a policy, a profile and a config in; a finished run out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from policies import make_policy
from policies.base import Policy
from policies.views import in_policy_order, views_from_trace
from sim.config import EngineConfig
from sim.engine import Engine
from sim.errors import SimError
from sim.prefix_keys import block_keys
from sim.profile import StepTimeProfile, load_profile
from sim.results import requests_frame, summarize
from traces.fingerprint import FINGERPRINT_KEY, trace_fingerprint
from traces.schema import HASH_BLOCK_TOKENS_KEY
from traces.sessions import next_turns


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


def sessions(trace: pd.DataFrame) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(successor row or -1, think_s) per row of a trace in policy order; (None, None)
    without session columns."""
    succ = next_turns(trace)
    if succ is None:
        return None, None
    n = len(trace)
    think = trace["think_s"].to_numpy(np.float64) if "think_s" in trace.columns else np.zeros(n)
    return succ, think


def simulate(
    trace: pd.DataFrame,
    policy: str | Policy = "fcfs",
    profile: str | StepTimeProfile | None = None,
    config: EngineConfig | None = None,
    progress=None,
    hash_block_tokens: int | None = None,
) -> SimResult:
    """hash_block_tokens: tokens per id of the trace's hash_ids column (its metadata key
    of that name; read from trace.attrs["hash_block_tokens"] when not given)."""
    config = config or EngineConfig()
    config.validate()
    prof = profile if isinstance(profile, StepTimeProfile) else load_profile(profile)
    pol = policy if isinstance(policy, Policy) else make_policy(policy)
    blocks, how = resolve_num_gpu_blocks(config, prof)
    # A trace row order is arrival order; the engine keys requests by row index.
    hbt = hash_block_tokens or trace.attrs.get(HASH_BLOCK_TOKENS_KEY)
    trace = in_policy_order(trace)
    keys = None
    if config.prefix_caching_enabled() and "hash_ids" in trace.columns:
        keys = block_keys(
            trace["hash_ids"].tolist(), trace["prompt_tokens"].to_numpy(), hbt, config.block_size
        )
    succ, think = sessions(trace)
    engine = Engine(
        views_from_trace(trace),
        pol,
        prof,
        config,
        blocks,
        progress=progress,
        keys=keys,
        successor=succ,
        think_s=think,
    )
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
    summary["warnings"] = [*summary.get("warnings", []), *pol.notes()]
    return SimResult(req, steps, summary, engine)
