"""What runs on a worker (a local process or a Ray task): make one trace, simulate one run.

Both functions are plain, picklable and import-light at module level, so any executor
can ship them. A run never raises for its own failure: it returns a row with status
"failed" and the error, so one bad run does not stop the sweep.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.engine_config import engine_columns, engine_config
from analysis.grid import RunTask, TraceTask
from traces.fingerprint import FINGERPRINT_KEY
from traces.results import SUMMARY_KEYS
from traces.schema import (
    HASH_BLOCK_TOKENS_KEY,
    PRED_TOKENS_PREFIX,
    SCORE_PREFIX,
    SESSION_COLUMNS,
)

# Summary entries kept as result columns besides SUMMARY_KEYS (provenance and cost).
EXTRA_SUMMARY_KEYS = (
    FINGERPRINT_KEY,  # what a live replay of the run's trace is matched by
    "sim_wall_s",
    "steps",
    "num_gpu_blocks",
    "stopped_early",
    "profile_label",
    "profile_source",
    "prefix_hit_rate",  # cached prompt tokens / prompt tokens: what a router comparison reads
)
# Result columns computed here from the per-request table (the summary has no such entry).
P99_PER_TOKEN = "p99_norm_latency_s_per_token"
# Columns that measure this machine, not the model: ignored when comparing datasets.
WALL_COLUMNS = ("wall_s", "sim_wall_s")
# Per-request columns kept for latency CDFs.
REQUEST_COLUMNS = (
    "request_id",
    "status",
    "output_tokens",
    "latency_s",
    "norm_latency_s_per_token",
    "ttft_s",
    "max_waiting_s",
)
FLEET_REQUEST_COLUMNS = ("replica", "arrival_s", "finish_s")
_TRACE_COLUMNS = (
    "request_id",
    "arrival_s",
    "prompt_tokens",
    "output_tokens",
    "hash_ids",
    *SESSION_COLUMNS,
)


@dataclass
class RunOutcome:
    """One finished run: its result row, and its per-request latencies if kept."""

    row: dict[str, Any]
    requests: pd.DataFrame | None = None


def make_trace(task: TraceTask) -> tuple[pd.DataFrame, dict]:
    """The trace of a TraceTask, cut to the columns a simulation reads, and its metadata."""
    from traces.io import read_trace

    if task.kind == "build":
        from traces.build import build_trace
        from traces.config import BuildConfig

        res = build_trace(BuildConfig(**task.options, seed=task.seed, keep_text=False))
        df, meta = res.df, res.meta
    else:
        df, meta = read_trace(task.options["path"])
        process = _arrival_process(task.options)
        if process is not None:
            from traces.arrivals import arrival_times
            from traces.seeding import rng_for

            df = df.copy()
            df["arrival_s"] = arrival_times(process, len(df), rng_for(task.seed, "arrivals"))
            meta = {**meta, "arrival": process.meta(), "seed": task.seed}
    keep = [
        c
        for c in df.columns
        if c in _TRACE_COLUMNS or c.startswith((SCORE_PREFIX, PRED_TOKENS_PREFIX))
    ]
    out = df[keep].reset_index(drop=True)
    out.attrs[HASH_BLOCK_TOKENS_KEY] = meta.get(HASH_BLOCK_TOKENS_KEY)
    return out, meta


def _arrival_process(options: dict[str, Any]):
    """The process that re-times a trace file, or None to keep its own arrivals."""
    from traces.arrivals import ArrivalProcess

    if options.get("burst"):
        return ArrivalProcess("burst")
    if options.get("rate") is not None:
        kind = "gamma" if options.get("cv") is not None else "poisson"
        return ArrivalProcess(kind, rate=options["rate"], cv=options.get("cv"))
    return None


def run_one(task: RunTask, trace: pd.DataFrame) -> RunOutcome:
    """Simulate one run; a failure becomes a row with status "failed" and the error."""
    from policies import make_policy
    from sim.profile import load_profile
    from sim.run import simulate

    started = time.perf_counter()
    row: dict[str, Any] = dict(task.columns)
    requests = None
    try:
        profile = load_profile(task.profile)
        cfg = engine_config(task.engine, profile, task.seed)
        row.update(engine_columns(cfg))
        policy = make_policy(task.policy)
        res = simulate(trace, policy, profile, cfg, replicas=task.replicas, router=task.router)
        row.update(_policy_columns(policy, trace))
        row.update({k: res.summary.get(k) for k in SUMMARY_KEYS + EXTRA_SUMMARY_KEYS})
        row[P99_PER_TOKEN] = p99_norm_latency(res.requests)
        row["trace_requests"] = len(trace)
        row.update(status="ok", error="")
        if task.keep_requests:
            columns = list(REQUEST_COLUMNS)
            if "replica" in res.requests.columns and (res.requests["replica"] > 0).any():
                columns += FLEET_REQUEST_COLUMNS  # per-replica load over time, in the report
            requests = res.requests[columns].reset_index(drop=True)
    except Exception as e:  # noqa: BLE001 - a run's failure is data, recorded in its row
        row.update(status="failed", error=one_line(e))
    row["wall_s"] = time.perf_counter() - started
    return RunOutcome(row, requests)


def p99_norm_latency(requests: pd.DataFrame) -> float:
    """p99 of latency per output token over finished requests (NaN if none finished),
    as the summary computes its other percentiles (numpy's linear interpolation)."""
    done = requests.loc[requests["status"] == "finished", "norm_latency_s_per_token"].dropna()
    return float(np.percentile(done.to_numpy(), 99)) if len(done) else math.nan


def _policy_columns(policy, trace: pd.DataFrame) -> dict[str, Any]:
    """policy_name, policy_family (without starvation prevention), canonical spec,
    every parameter as policy_<name>, and the Kendall's tau the policy's order reached."""
    inner = getattr(policy, "inner", policy)
    params = {**inner.params(), **(policy.params() if policy is not inner else {})}
    cols: dict[str, Any] = {
        "policy_name": inner.name,
        "policy_family": inner.describe(),
        "policy_canonical": policy.describe(),
        **{f"policy_{k}": v for k, v in params.items()},
    }
    cols["achieved_tau"] = _achieved_tau(inner, trace)
    return cols


def _achieved_tau(inner, trace: pd.DataFrame) -> float:
    """approx-oracle's recorded tau; for ltr, Kendall's tau of its score against the true
    length (shorter = higher score, so a perfect predictor gives 1); else NaN."""
    tau = getattr(inner, "achieved_tau", None)
    if tau is not None:
        return float(tau)
    col = inner.params().get("col") if inner.name == "ltr" else None
    if col and col in trace.columns and len(trace) > 1:
        from scipy.stats import kendalltau

        return float(kendalltau(-trace[col].to_numpy(), trace["output_tokens"]).statistic)
    return math.nan


def one_line(e: BaseException) -> str:
    """'Type: first line of the message', for a results column."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__
