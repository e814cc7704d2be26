"""Turn a finished engine into the run's tables and summary (schema: traces/results.py)."""

from __future__ import annotations

from operator import attrgetter
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from sim.request import FINISHED, REJECTED
from traces.results import add_derived_columns, rejection_warning, summarize_run


def requests_frame(engine, request_ids: np.ndarray) -> pd.DataFrame:
    """One row per request, each column read off the requests in one pass (numpy, not
    pandas per row)."""
    reqs = engine.reqs
    n = len(reqs)

    def col(attr, dtype=np.float64, of=reqs):
        return np.fromiter(map(attrgetter(attr), of), dtype, n)

    views = [r.view for r in reqs]
    state = col("state", np.int64)
    status = np.array(["unfinished", "finished", "rejected"])[
        (state == FINISHED) + 2 * (state == REJECTED)
    ]
    return add_derived_columns(
        pd.DataFrame(
            {
                "request_id": request_ids,
                "arrival_s": col("arrival_s", of=views),
                "first_scheduled_s": col("first_scheduled_s"),
                "first_token_s": col("first_token_s"),
                "finish_s": col("finish_s"),
                "prompt_tokens": col("prompt", np.int64),
                "output_tokens": col("output", np.int64),
                "tokens_generated": col("generated", np.int64),
                "preemptions": col("preemptions", np.int64, views),
                "max_token_gap_s": col("max_gap_s"),
                "status": status,
                "cached_tokens": np.maximum(col("cached_tokens", np.int64), 0),
            }
        )
    )


def summarize(engine, req: pd.DataFrame, extra: dict[str, Any]) -> dict[str, Any]:
    s = summarize_run(req, engine.preemptions)
    s["sim_wall_s"] = engine.wall_s
    s["steps"] = int(engine.steps.n)
    s["prefix_caching"] = engine.kv.enabled
    started = req["first_scheduled_s"].notna()
    prompt = int(req.loc[started, "prompt_tokens"].sum())
    s["prefix_cached_tokens"] = int(req["cached_tokens"].sum())
    s["prefix_hit_rate"] = s["prefix_cached_tokens"] / prompt if prompt else 0.0
    s["prefix_blocks_evicted"] = int(engine.kv.evicted)
    s.update(extra)
    s["warnings"] = [w for w in (rejection_warning(s),) if w]
    return s


class FleetTotals:
    """What summarize() reads of an engine, summed over a fleet's replicas."""

    def __init__(self, fleet) -> None:
        self.preemptions = fleet.preemptions
        self.wall_s = fleet.wall_s
        self.steps = SimpleNamespace(n=sum(e.steps.n for e in fleet.engines))
        self.kv = SimpleNamespace(
            enabled=any(e.kv.enabled for e in fleet.engines),
            evicted=sum(e.kv.evicted for e in fleet.engines),
        )


def fleet_steps(fleet) -> pd.DataFrame:
    """Every replica's steps with a `replica` column; a fleet's in start order."""
    frames = []
    for e in fleet.engines:
        d = e.steps.frame_dict()
        d["replica"] = np.full(e.steps.n, e.replica, np.int64)
        frames.append(pd.DataFrame(d))
    if len(frames) == 1:
        return frames[0]
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values("start_s", kind="stable").reset_index(drop=True)


def fleet_summary(fleet, req: pd.DataFrame, steps: pd.DataFrame) -> dict[str, Any]:
    """The fleet's own figures and one section per replica."""
    per = []
    for e, spec in zip(fleet.engines, fleet.specs, strict=True):
        mine = req[req["replica"] == e.replica]
        s = summarize_run(mine, e.preemptions)
        started = mine["first_scheduled_s"].notna()
        prompt = int(mine.loc[started, "prompt_tokens"].sum())
        cached = int(mine["cached_tokens"].sum())
        s.update(
            replica=e.replica,
            profile=spec.profile.name,
            num_gpu_blocks=spec.num_gpu_blocks,
            engine_mode=spec.config.engine_mode,
            steps=int(e.steps.n),
            prefix_cached_tokens=cached,
            prefix_hit_rate=cached / prompt if prompt else 0.0,
            busy_s=float(steps.loc[steps["replica"] == e.replica, "duration_s"].sum()),
        )
        per.append(s)
    counts = np.array([p["requests"] for p in per], np.float64)
    return {
        "replicas": len(fleet.engines),
        "router": fleet.router.describe() if fleet.router is not None else None,
        "router_refresh_s": fleet.fleet_cfg.router_refresh_s,
        "replica_request_share_max": float(counts.max() / counts.sum()) if counts.sum() else 0.0,
        "per_replica": per,
    }
