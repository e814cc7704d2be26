"""Live runs (a real vLLM replay, written in the run schema of traces/results.py) and the
sweep run each one measured, so the report can set simulated beside measured values.

A live run matches a sweep run by its canonical policy and its trace: the trace's
fingerprint (traces/fingerprint.py) where both recorded one, so a replay of any copy of
DIR/traces/<trace_id>.parquet matches; for older runs the trace file's name, else the
request count. Engine limits the live run recorded narrow it further; a run_id it
records (summary key `sweep_run_id` or `run_id`, optional) decides outright. No match
unless exactly one ok sweep run fits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.errors import AnalysisError
from traces.fingerprint import FINGERPRINT_KEY

RUN_ID_KEYS = ("sweep_run_id", "run_id")
ENGINE_KEYS = (
    "max_num_seqs",
    "max_num_batched_tokens",
    "block_size",
    "num_gpu_blocks",
    "chunked_prefill",
    "max_model_len",
)


@dataclass(frozen=True)
class LiveRun:
    """One measured run: where it is and its summary.json."""

    name: str
    path: Path
    summary: dict


def find_live_runs(paths: list[Path]) -> list[LiveRun]:
    """Run folders (with summary.json) at each path or one level below it."""
    found = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise AnalysisError(f"--live: no such folder: {path}")
        dirs = (
            [path]
            if (path / "summary.json").exists()
            else sorted(d for d in path.iterdir() if (d / "summary.json").exists())
        )
        for d in dirs:
            try:
                summary = json.loads((d / "summary.json").read_text())
            except ValueError:
                raise AnalysisError(f"{d}/summary.json: not valid JSON") from None
            found.append(LiveRun(d.name, d, summary))
    return found


def match_live(live: LiveRun, runs: pd.DataFrame) -> str | None:
    """The run_id of the ok sweep run this live run measured, or None if not exactly one."""
    ok = runs[runs["status"] == "ok"]
    for key in RUN_ID_KEYS:
        rid = live.summary.get(key)
        if rid is not None and (ok["run_id"] == str(rid)).any():
            return str(rid)
    policy = live.summary.get("policy")
    if policy is None or "policy_canonical" not in ok.columns:
        return None
    same = ok[ok["policy_canonical"] == policy]
    trace_id = Path(str(live.summary.get("trace") or "")).stem
    fingerprint = live.summary.get(FINGERPRINT_KEY)
    if fingerprint and FINGERPRINT_KEY in same.columns and same[FINGERPRINT_KEY].notna().any():
        same = same[same[FINGERPRINT_KEY] == fingerprint]
    elif trace_id and (same["trace_id"] == trace_id).any():  # replayed DIR/traces/<trace_id>
        same = same[same["trace_id"] == trace_id]
    elif live.summary.get("requests") is not None:
        same = same[same["requests"] == live.summary["requests"]]
    for key in ENGINE_KEYS:  # the server's limits, where the live run recorded them
        value = live.summary.get(key)
        if len(same) > 1 and value is not None and key in same.columns:
            same = same[same[key] == value]
    return str(same["run_id"].iloc[0]) if len(same) == 1 else None
