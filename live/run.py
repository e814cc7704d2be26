"""One replay of one trace under one policy, start to written run directory; shared by
the in-process engine and the server mode."""

from __future__ import annotations

import datetime as dt
import math
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from live.prompts import prompt_token_ids
from live.records import FAILED, RequestRecord, requests_frame
from live.replay import Backend, Turns, replay
from live.steplog import StepLog, read_step_log, steps_frame
from live.xargs import RequestTag, RunTag, encode
from policies import make_policy
from policies.lengthdist import DIST_PREFIX
from policies.views import feature_columns, in_policy_order, views_from_trace
from traces.fingerprint import FINGERPRINT_KEY, trace_fingerprint
from traces.results import summarize_run, write_run
from traces.schema import HASH_BLOCK_TOKENS_KEY, SCORE_PREFIX
from traces.sessions import next_turns

START_LEAD_S = 0.05  # trace time 0 this far in the future, so the first request is on time


@runtime_checkable
class FleetTables(Protocol):
    """A backend over several engines (live/fleet.py): it adds the `replica` column,
    merges its engines' step logs and adds the fleet's figures to the summary."""

    def fleet_tables(self, req: pd.DataFrame, run_id: str
                     ) -> tuple[pd.DataFrame, StepLog, dict[str, Any]]: ...


@dataclass(frozen=True)
class RunSpec:
    """What to replay and where to write it."""

    policy: str
    out: Path
    trace: str = ""  # the trace file, as the user named it (provenance; prepare in-engine)
    step_log: Path | None = None  # where the plug-in writes this run's steps
    send_run_config: bool = True  # policy, trace and clock ride with each request
    seed: int = 0
    stall_timeout_s: float = 120.0
    scored_in_server: bool = False  # the plug-in's predictor gives the scores the policy reads


async def run_trace(
    backend: Backend,
    trace: pd.DataFrame,
    spec: RunSpec,
    provenance: dict[str, Any],
    vocab_size: int,
    tokenizer_file: Path | None = None,
    max_model_len: int | None = None,
) -> dict[str, Any]:
    """Replay trace under spec.policy; write requests.parquet, steps.parquet and
    summary.json to spec.out; return the summary. A trace with hash_ids needs its
    hash_block_tokens in trace.attrs (read_trace's metadata key of that name)."""
    hash_block_tokens = trace.attrs.get(HASH_BLOCK_TOKENS_KEY)
    df = in_policy_order(trace)
    policy = make_policy(spec.policy)
    if not spec.scored_in_server:  # else the scores do not exist before the server's step
        policy.prepare(views_from_trace(df))  # fails here, clearly, on a column it lacks
    prompts, how = prompt_token_ids(df, vocab_size, tokenizer_file, spec.seed,
                                    hash_block_tokens)
    turns = session_turns(df)
    run_id = uuid.uuid4().hex[:12]
    t0 = time.monotonic() + START_LEAD_S
    feature_cols = feature_columns(df)
    if spec.scored_in_server:  # the trace's own scores would be kept instead of predicted
        feature_cols = [c for c in feature_cols if not c.startswith((SCORE_PREFIX, DIST_PREFIX))]
    run_tag = RunTag(
        run=run_id,
        policy=spec.policy if spec.send_run_config else None,
        trace=str(Path(spec.trace).resolve())
        if spec.trace and spec.send_run_config and not spec.scored_in_server else None,
        step_log=str(spec.step_log.resolve()) if spec.step_log and spec.send_run_config
        else None,
        t0=t0 if spec.send_run_config else None,
    )
    records, xargs = [], []
    for i, row in enumerate(df.itertuples(index=False)):
        records.append(RequestRecord(
            request_id=int(row.request_id), arrival_s=float(row.arrival_s),
            prompt_tokens=int(row.prompt_tokens), output_tokens=int(row.output_tokens),
            policy_id=i,
        ))
        feats = {c: float(getattr(row, c)) for c in feature_cols}
        xargs.append(encode(RequestTag(i, float(row.arrival_s), int(row.output_tokens),
                                       {k: v for k, v in feats.items() if not math.isnan(v)}),
                            run_tag))
    backend.begin(run_id, t0)
    started = dt.datetime.now(dt.timezone.utc)
    wall0 = time.monotonic()
    reason = await replay(backend, records, prompts, xargs, t0, spec.stall_timeout_s,
                          max_model_len, turns)
    wall_s = time.monotonic() - wall0
    log = read_run_log(spec.step_log, run_id)
    req = requests_frame(records)
    fleet: dict[str, Any] = {}
    if isinstance(backend, FleetTables):
        req, log, fleet = backend.fleet_tables(req, run_id)
    summary = summarize(req, log, reason)
    summary.update({
        "policy": policy.describe(),
        "policy_spec": spec.policy,
        "trace": spec.trace,
        FINGERPRINT_KEY: trace_fingerprint(df),
        "engine": "vllm",
        "prompt_ids": how,
        "sessions": None if turns is None else {
            "turns_after_the_first": sum(p >= 0 for p in turns.previous),
            "arrival_s": "a later turn's: when it was sent, think_s after its previous "
                         "turn's answer reached the driver (closed loop)"},
        "started_at": started.isoformat(timespec="seconds"),
        "replay_wall_s": wall_s,
        **provenance,
        **fleet,
    })
    if log.header.get("policy"):
        summary["plugin_policy"] = log.header["policy"]  # what the engine itself ran
    if not spec.send_run_config:
        summary["policy_note"] = ("remote server: it orders requests by its own "
                                  "LTRSCHED_POLICY; --policy only labels this run")
    for key in ("num_gpu_blocks", "block_size", "max_num_seqs", "max_num_batched_tokens",
                "chunked_prefill", "max_model_len", "vllm_version", "prefix_caching"):
        if summary.get(key) is None and key in log.header:  # server mode: the plug-in knows
            summary[key] = log.header[key]
    write_run(spec.out, req, log.steps, summary)
    if spec.step_log is not None and spec.send_run_config and spec.step_log.parent == spec.out:
        spec.step_log.unlink(missing_ok=True)
    return summary


def read_replay_trace(path: str | Path) -> pd.DataFrame:
    """A trace file as run_trace takes it: the table, with the metadata the replay needs
    (hash_block_tokens, for prompts from hash_ids) in its attrs."""
    from traces.io import read_trace

    df, meta = read_trace(path)
    df.attrs[HASH_BLOCK_TOKENS_KEY] = meta.get(HASH_BLOCK_TOKENS_KEY)
    return df


def session_turns(df: pd.DataFrame) -> Turns | None:
    """Each row's previous turn (-1: none) and think time; None without sessions."""
    succ = next_turns(df)
    if succ is None:
        return None
    previous = [-1] * len(df)
    for i, s in enumerate(succ.tolist()):
        if s >= 0:
            previous[s] = i
    think = df["think_s"].to_numpy(np.float64) if "think_s" in df.columns else np.zeros(len(df))
    return Turns(previous, think.tolist())


def read_run_log(path: Path | None, run_id: str) -> StepLog:
    """The run's steps as far as the engine had logged them when the last response came
    back: every step up to the last finishing one (flushed before its outputs were sent).
    The empty step vLLM runs after it (scheduling nothing, to pass on the finished ids)
    may be on disk or not yet; it is left out, so the steps do not hang on that race."""
    if path is None or not path.exists():
        return StepLog({}, steps_frame([]), [])
    return read_step_log(path, run_id, through_last_work=True)


def summarize(req: pd.DataFrame, log: StepLog, reason: str | None) -> dict[str, Any]:
    """The shared summary metrics plus what only a live run has: failures, the plug-in's
    own time per step against the step time, and how late the driver sent requests."""
    s = summarize_run(req, int(req["preemptions"].sum()))
    steps = log.steps
    s["failed"] = int((req["status"] == FAILED).sum())
    s["failure"] = reason
    s["plugin_error"] = log.errors[0] if log.errors else None
    s["steps"] = int(len(steps))
    if len(steps):
        plugin = steps["plugin_s"].to_numpy(np.float64)
        dur = steps["duration_s"].to_numpy(np.float64)
        s["plugin_overhead"] = {
            "mean_s": float(plugin.mean()),
            "p50_s": float(np.percentile(plugin, 50)),
            "p99_s": float(np.percentile(plugin, 99)),
            "mean_step_s": float(dur.mean()),
            "share_of_step_time": float(plugin.sum() / dur.sum()) if dur.sum() > 0 else None,
        }
    known = req[req["cached_tokens"] >= 0]  # reported by the engine
    prompt = int(known["prompt_tokens"].sum())
    s["prefix_cached_tokens"] = int(known["cached_tokens"].sum()) if len(known) else None
    s["prefix_hit_rate"] = s["prefix_cached_tokens"] / prompt if prompt else None
    lag = (req["submit_s"] - req["arrival_s"]).dropna().to_numpy(np.float64)
    s["submit_lag_s"] = {"mean": float(lag.mean()) if len(lag) else None,
                         "max": float(lag.max()) if len(lag) else None}
    return s
