"""Turn a finished engine into the run's tables and summary (schema: traces/results.py)."""

from __future__ import annotations

from operator import attrgetter
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
