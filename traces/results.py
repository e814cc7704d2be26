"""The run schema shared by sim/ and live/: a run's per-request and per-step tables and
its summary. Both engines write the same files, so analysis/ compares them column by
column.

requests.parquet: request_id, arrival_s, first_scheduled_s, first_token_s, finish_s,
  prompt_tokens, output_tokens, tokens_generated, preemptions, max_token_gap_s, status
  (finished / rejected / unfinished / failed), and the derived latency_s, ttft_s,
  norm_latency_s_per_token, tpot_s, max_waiting_s (the paper's fairness metric:
  max(TTFT, largest gap between tokens)). Times in seconds from the trace's start.
steps.parquet: step, start_s, duration_s, prefill_tokens, prefill_sq_tokens,
  decode_requests, decode_context_tokens, running_requests, waiting_requests,
  kv_blocks_used, preemptions, swapped_blocks.
Prefix caching adds, per request, cached_tokens (prompt tokens found in the prefix cache
when it was first scheduled, vLLM's num_cached_tokens) and, per step, prefill_ctx_tokens
(sum over prefill chunks of chunk x tokens already cached before it), cached_tokens (hits
of the requests admitted in the step) and blocks_evicted (cached blocks reused).
summary.json: SUMMARY_KEYS and provenance (policy, profile or model, engine limits).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from traces.io import atomic_write

REQUEST_COLUMNS = (
    "request_id", "arrival_s", "first_scheduled_s", "first_token_s", "finish_s",
    "prompt_tokens", "output_tokens", "tokens_generated", "preemptions", "max_token_gap_s",
    "status",
)
STEP_COLUMNS = (
    "step", "start_s", "duration_s", "prefill_tokens", "prefill_sq_tokens", "decode_requests",
    "decode_context_tokens", "running_requests", "waiting_requests", "kv_blocks_used",
    "preemptions", "swapped_blocks",
)
PREFIX_REQUEST_COLUMNS = ("cached_tokens",)
PREFIX_STEP_COLUMNS = ("prefill_ctx_tokens", "cached_tokens", "blocks_evicted")
SUMMARY_KEYS = (
    "requests", "completed", "rejected", "unfinished", "mean_latency_s", "p50_latency_s",
    "p90_latency_s", "p99_latency_s", "mean_norm_latency_s_per_token", "mean_ttft_s",
    "p99_ttft_s", "mean_tpot_s", "max_waiting_time_p99_s", "max_waiting_time_max_s",
    "throughput_req_s", "throughput_tok_s", "preemptions", "makespan_s",
)


def add_derived_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Add latency, TTFT, per-token latency, TPOT and max waiting time to a requests table."""
    df = df.copy()
    df["latency_s"] = df["finish_s"] - df["arrival_s"]
    df["ttft_s"] = df["first_token_s"] - df["arrival_s"]
    df["norm_latency_s_per_token"] = df["latency_s"] / df["output_tokens"]
    decode_tokens = (df["output_tokens"] - 1).where(df["output_tokens"] > 1)
    df["tpot_s"] = (df["finish_s"] - df["first_token_s"]) / decode_tokens
    df["max_waiting_s"] = np.maximum(df["ttft_s"], df["max_token_gap_s"])
    return df


def summarize_run(req: pd.DataFrame, preemptions: int) -> dict[str, Any]:
    """The summary metrics of a requests table (with derived columns)."""
    done = req[req["status"] == "finished"]
    lat = done["latency_s"].to_numpy()

    def pct(a, q):
        return float(np.percentile(a, q)) if len(a) else math.nan

    def mean(a):
        return float(np.mean(a)) if len(a) else math.nan

    start = float(req["arrival_s"].min()) if len(req) else 0.0
    end = float(done["finish_s"].max()) if len(done) else start
    makespan = end - start
    return {
        "requests": int(len(req)),
        "completed": int(len(done)),
        "rejected": int((req["status"] == "rejected").sum()),
        "unfinished": int(req["status"].isin(["unfinished", "failed"]).sum()),
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
        if makespan > 0 else math.nan,
        "preemptions": int(preemptions),
        "makespan_s": makespan,
    }


def write_run(out: Path, req: pd.DataFrame, steps: pd.DataFrame, summary: dict) -> None:
    """Write requests.parquet, steps.parquet and summary.json, each via a temporary name."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "requests.parquet", lambda p: req.to_parquet(p, index=False))
    atomic_write(out / "steps.parquet", lambda p: steps.to_parquet(p, index=False))
    atomic_write(out / "summary.json",
                 lambda p: Path(p).write_text(json.dumps(summary, indent=2, default=_jsonable)))


def read_run(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    run_dir = Path(run_dir)
    return (pd.read_parquet(run_dir / "requests.parquet"),
            pd.read_parquet(run_dir / "steps.parquet"),
            json.loads((run_dir / "summary.json").read_text()))


def _jsonable(x):
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    return str(x)


def completed_share(summary: dict) -> str:
    """What a run's latency figures are over, when it is not every request: "over 27 of
    2,000 requests; 1,973 rejected" ("" when all completed)."""
    n, done = summary.get("requests") or 0, summary.get("completed") or 0
    if done == n:
        return ""
    dropped = [
        f"{summary[k]:,} {k}" for k in ("rejected", "unfinished", "failed") if summary.get(k)
    ]
    return f"over {done:,} of {n:,} requests" + (f"; {', '.join(dropped)}" if dropped else "")


def rejection_warning(summary: dict) -> str | None:
    """One line when a run rejected requests (they never fit the engine), so figures over
    the survivors are not read as the whole trace's; None otherwise."""
    rejected, n = summary.get("rejected") or 0, summary.get("requests") or 0
    if not rejected:
        return None
    return (
        f"{rejected:,} of {n:,} requests rejected (prompt + output longer than "
        "max_model_len, or than the KV cache holds); latency and throughput are over the "
        f"{summary.get('completed') or 0:,} that completed"
    )
