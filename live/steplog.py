"""The per-step log the plug-in writes in vLLM's engine-core process, and its reader.

JSON lines, appended and flushed every few steps, at every step that finishes a request and
at every step after which the engine is idle, so that a driver in another process (or
after a crash) reads what was logged, and a driver that saw a response end finds every
step up to the one that ended it: the step is logged in update_from_output, before vLLM
sends that step's outputs. A "run" header when a run starts, one "step" line per engine
step, and "error" lines when the policy failed and the plug-in fell back to vLLM's
arrival order.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from traces.results import PREFIX_STEP_COLUMNS, STEP_COLUMNS

# Columns of steps.parquet beyond the shared schema (traces/results.py), live runs only.
LIVE_STEP_COLUMNS = (
    "end_s", "schedule_s", "execute_s", "update_s", "plugin_s", "predictor_s",
    "predictor_batch_s", "scheduled_requests", "scored_requests", "finished_requests", "busy_after",
)
FLUSH_EVERY_STEPS = 32
FLUSH_EVERY_S = 0.5


@dataclass
class StepRecord:
    """One engine step, times in seconds on the run's clock (trace time)."""

    step: int
    start_s: float
    end_s: float = float("nan")
    schedule_s: float = 0.0
    execute_s: float = 0.0
    update_s: float = 0.0
    plugin_s: float = 0.0  # the plug-in's policy work and logging
    predictor_s: float = 0.0  # schedule()'s time on in-server scoring (live/inserver.py)
    predictor_batch_s: float = 0.0  # compute time of the batch scored for this step
    prefill_tokens: int = 0
    prefill_sq_tokens: int = 0
    decode_requests: int = 0
    decode_context_tokens: int = 0
    running_requests: int = 0
    waiting_requests: int = 0
    kv_blocks_used: int = -1
    preemptions: int = 0
    # Prefix caching (traces/results.py): chunk x tokens before it, over prefill chunks;
    # the hits of the requests first scheduled in the step. vLLM 0.32 counts no evictions
    # outside its optional KV events, so blocks_evicted stays 0 in live runs.
    prefill_ctx_tokens: int = 0
    cached_tokens: int = 0
    blocks_evicted: int = 0
    scheduled_requests: int = 0
    scored_requests: int = 0
    finished_requests: int = 0
    busy_after: bool = True


class StepLogWriter:
    """Appends JSON lines to one file; buffers a few steps between flushes, none past a
    step that finishes a request (its driver may read the log as soon as the response
    ends) or leaves the engine idle (no more steps may come to flush them)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._pending = 0
        self._last_flush = time.monotonic()

    def header(self, **fields: Any) -> None:
        self._write({"kind": "run", **fields})
        self.flush()

    def step(self, run: str, rec: StepRecord) -> None:
        self._write({"kind": "step", "run": run, **asdict(rec)})
        self._pending += 1
        now = time.monotonic()
        if (rec.finished_requests or not rec.busy_after or self._pending >= FLUSH_EVERY_STEPS
                or now - self._last_flush >= FLUSH_EVERY_S):
            self.flush()

    def error(self, run: str, message: str) -> None:
        self._write({"kind": "error", "run": run, "message": message})
        self.flush()

    def flush(self) -> None:
        if not self._f.closed:
            self._f.flush()
        self._pending = 0
        self._last_flush = time.monotonic()

    def close(self) -> None:
        if not self._f.closed:
            self._f.flush()
            self._f.close()

    def _write(self, obj: dict[str, Any]) -> None:
        if not self._f.closed:
            self._f.write(json.dumps(obj, default=float) + "\n")


@dataclass
class StepLog:
    """What a step log says about one run."""

    header: dict[str, Any]
    steps: pd.DataFrame
    errors: list[str]


def read_step_log(path: str | Path, run: str | None = None,
                  through_last_work: bool = False) -> StepLog:
    """Read one run's lines (the last run in the file when run is None); a torn last
    line (a crash mid-write) is skipped. through_last_work: the steps end at the last one
    that scheduled a request, before durations are taken, so a trailing empty step (on
    disk or not yet) changes nothing."""
    lines = []
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            continue
    if run is None:
        runs = [x["run"] for x in lines if x.get("kind") == "run"]
        run = runs[-1] if runs else None
    header = next((x for x in lines if x.get("kind") == "run" and x.get("run") == run), {})
    rows = [x for x in lines if x.get("kind") == "step" and x.get("run") == run]
    if through_last_work:
        rows.sort(key=lambda x: x["step"])
        while rows and not rows[-1].get("scheduled_requests"):
            rows.pop()
    errors = [x["message"] for x in lines if x.get("kind") == "error" and x.get("run") == run]
    return StepLog(header, steps_frame(rows), errors)


def steps_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """steps.parquet from step records: the shared columns (prefix caching's too), then
    the live-only ones.

    duration_s is the step's share of the engine's time, as the simulator's steps are
    back to back: from this schedule() to the next one while the engine stayed busy
    (so the engine loop's own work between steps counts), else to the end of
    update_from_output()."""
    cols = {c: [] for c in (*STEP_COLUMNS, *PREFIX_STEP_COLUMNS, *LIVE_STEP_COLUMNS)}
    if rows:
        defaults = asdict(StepRecord(step=0, start_s=0.0))
        df = pd.DataFrame([{**defaults, **r} for r in rows])
        df = df.sort_values("step", kind="stable").reset_index(drop=True)
        start = df["start_s"].to_numpy(np.float64)
        end = df["end_s"].to_numpy(np.float64)
        busy = df["busy_after"].to_numpy(bool)
        nxt = np.append(start[1:], np.nan)
        follow = busy & ~np.isnan(nxt)
        df["duration_s"] = np.where(follow, nxt - start, end - start)
        df["swapped_blocks"] = 0
        cols = {c: df[c].to_numpy() for c in cols}
    out = pd.DataFrame(cols)
    ints = [c for c in out.columns if c not in ("start_s", "duration_s", "end_s", "schedule_s",
                                                "execute_s", "update_s", "plugin_s",
                                                "predictor_s", "predictor_batch_s",
                                                "busy_after")]
    return out.astype({c: "int64" for c in ints} | {"busy_after": bool})
