"""Turn a finished engine into the run's two tables and its summary.

requests.parquet, steps.parquet and summary.json share one schema with live/, so
analysis/ can compare a simulated run with a measured one column by column.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.request import FINISHED, REJECTED

SUMMARY_KEYS = (
    "requests",
    "completed",
    "rejected",
    "unfinished",
    "mean_latency_s",
    "p50_latency_s",
    "p90_latency_s",
    "p99_latency_s",
    "mean_norm_latency_s_per_token",
    "mean_ttft_s",
    "p99_ttft_s",
    "mean_tpot_s",
    "max_waiting_time_p99_s",
    "max_waiting_time_max_s",
    "throughput_req_s",
    "throughput_tok_s",
    "preemptions",
    "makespan_s",
    "sim_wall_s",
)


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
    f = lambda attr: np.array([getattr(r, attr) for r in reqs], dtype=np.float64)  # noqa: E731
    df = pd.DataFrame(
        {
            "request_id": request_ids,
            "arrival_s": np.array([r.view.arrival_s for r in reqs], dtype=np.float64),
            "first_scheduled_s": f("first_scheduled_s"),
            "first_token_s": f("first_token_s"),
            "finish_s": f("finish_s"),
            "prompt_tokens": np.array([r.prompt for r in reqs], dtype=np.int64),
            "output_tokens": np.array([r.output for r in reqs], dtype=np.int64),
            "tokens_generated": np.array([r.generated for r in reqs], dtype=np.int64),
            "preemptions": np.array([r.preemptions for r in reqs], dtype=np.int64),
            "max_token_gap_s": f("max_gap_s"),
            "status": status,
        }
    )
    df["latency_s"] = df["finish_s"] - df["arrival_s"]
    df["ttft_s"] = df["first_token_s"] - df["arrival_s"]
    df["norm_latency_s_per_token"] = df["latency_s"] / df["output_tokens"]
    decode_tokens = (df["output_tokens"] - 1).where(df["output_tokens"] > 1)
    df["tpot_s"] = (df["finish_s"] - df["first_token_s"]) / decode_tokens
    # The paper's fairness metric: the longest a request waited for anything.
    df["max_waiting_s"] = np.maximum(df["ttft_s"], df["max_token_gap_s"])
    return df


def summarize(engine, req: pd.DataFrame, extra: dict[str, Any]) -> dict[str, Any]:
    done = req[req["status"] == "finished"]
    lat = done["latency_s"].to_numpy()
    pct = lambda a, q: float(np.percentile(a, q)) if len(a) else math.nan  # noqa: E731
    mean = lambda a: float(np.mean(a)) if len(a) else math.nan  # noqa: E731
    start = float(req["arrival_s"].min()) if len(req) else 0.0
    end = float(done["finish_s"].max()) if len(done) else start
    makespan = end - start
    s = {
        "requests": int(len(req)),
        "completed": int(len(done)),
        "rejected": int((req["status"] == "rejected").sum()),
        "unfinished": int((req["status"] == "unfinished").sum()),
        "mean_latency_s": mean(lat),
        "p50_latency_s": pct(lat, 50),
        "p90_latency_s": pct(lat, 90),
        "p99_latency_s": pct(lat, 99),
        "mean_norm_latency_s_per_token": mean(done["norm_latency_s_per_token"]),
        "mean_ttft_s": mean(done["ttft_s"]),
        "p99_ttft_s": pct(done["ttft_s"].to_numpy(), 99),
        "mean_tpot_s": mean(done["tpot_s"].dropna()),
        "max_waiting_time_p99_s": pct(done["max_waiting_s"].to_numpy(), 99),
        "max_waiting_time_max_s": float(done["max_waiting_s"].max()) if len(done) else math.nan,
        "throughput_req_s": len(done) / makespan if makespan > 0 else math.nan,
        "throughput_tok_s": float(done["output_tokens"].sum()) / makespan
        if makespan > 0
        else math.nan,
        "preemptions": int(engine.preemptions),
        "makespan_s": makespan,
        "sim_wall_s": engine.wall_s,
        "steps": int(engine.steps.n),
    }
    s.update(extra)
    return s


def write_run(out: Path, req: pd.DataFrame, steps: pd.DataFrame, summary: dict) -> None:
    """Write the three files, each to a temporary name first, then rename."""
    from traces.io import atomic_write

    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "requests.parquet", lambda p: req.to_parquet(p, index=False))
    atomic_write(out / "steps.parquet", lambda p: steps.to_parquet(p, index=False))
    atomic_write(
        out / "summary.json",
        lambda p: Path(p).write_text(json.dumps(summary, indent=2, default=_jsonable)),
    )


def _jsonable(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    return str(x)
