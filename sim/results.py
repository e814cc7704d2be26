"""Turn a finished engine into the run's tables and summary (schema: traces/results.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sim.request import FINISHED, REJECTED
from traces.results import add_derived_columns, rejection_warning, summarize_run


def requests_frame(engine, request_ids: np.ndarray) -> pd.DataFrame:
    reqs = engine.reqs
    status = np.array(
        [
            "finished"
            if r.state == FINISHED
            else "rejected"
            if r.state == REJECTED
            else "unfinished"
            for r in reqs
        ]
    )

    def col(attr, dtype=np.float64):
        return np.array([getattr(r, attr) for r in reqs], dtype=dtype)

    return add_derived_columns(
        pd.DataFrame(
            {
                "request_id": request_ids,
                "arrival_s": np.array([r.view.arrival_s for r in reqs], dtype=np.float64),
                "first_scheduled_s": col("first_scheduled_s"),
                "first_token_s": col("first_token_s"),
                "finish_s": col("finish_s"),
                "prompt_tokens": col("prompt", np.int64),
                "output_tokens": col("output", np.int64),
                "tokens_generated": col("generated", np.int64),
                "preemptions": np.array([r.view.preemptions for r in reqs], dtype=np.int64),
                "max_token_gap_s": col("max_gap_s"),
                "status": status,
                "cached_tokens": np.array([max(r.cached_tokens, 0) for r in reqs], dtype=np.int64),
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
