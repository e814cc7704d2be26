"""Run a sweep: expand the spec, skip the runs already done, build the traces the rest
need, run them on an executor, and write each result the moment it arrives.

Resuming is not a mode: every start reads which run_ids have an ok part in DIR/results
and runs only the others (failed runs included: they are tried again). Stopping a sweep
at any point loses at most the runs in flight.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis.dataset import SweepDir, done_run_ids, write_result
from analysis.executors import ExecutorOptions, make_executor
from analysis.grid import Grid, RunTask, expand
from analysis.spec import SweepSpec
from analysis.worker import make_trace, one_line, run_one
from traces.errors import TraceError
from traces.io import atomic_write, read_trace, write_trace


class SweepListener:
    """Told what the sweep does, for a progress display; the default shows nothing."""

    def traces_started(self, total: int) -> None: ...

    def trace_done(self, ok: bool) -> None: ...

    def runs_started(self, total: int, done_before: int, pending: int) -> None: ...

    def run_done(self, row: dict) -> None: ...


@dataclass
class SweepSummary:
    """What one invocation did: runs in the grid, done before, ok and failed now."""

    runs: int
    done_before: int
    ok: int = 0
    failed: int = 0
    not_started: int = 0  # left for later by --max-runs
    wall_s: float = 0.0
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # run_id, policy, error


def run_sweep(
    spec: SweepSpec,
    out: str | Path,
    executor: str = "local",
    options: ExecutorOptions | None = None,
    max_runs: int | None = None,
    listener: SweepListener | None = None,
    spec_text: str | None = None,
) -> SweepSummary:
    """Run every run of spec not yet done in out; return what happened."""
    started = time.perf_counter()
    listener = listener or SweepListener()
    grid = expand(spec)
    sweep = SweepDir(Path(out))
    done = done_run_ids(sweep)
    pending = [r for r in grid.runs if r.run_id not in done]
    summary = SweepSummary(len(grid.runs), len(grid.runs) - len(pending))
    if max_runs is not None:
        summary.not_started = max(0, len(pending) - max_runs)
        pending = pending[:max_runs]
    sweep.root.mkdir(parents=True, exist_ok=True)
    if spec_text is not None:
        atomic_write(sweep.root / "spec.yaml", lambda p: Path(p).write_text(spec_text))
    if not pending:
        summary.wall_s = time.perf_counter() - started
        return summary
    with make_executor(executor, options or ExecutorOptions()) as ex:
        traces = _traces(ex, grid, pending, sweep, listener)
        listener.runs_started(len(pending), summary.done_before, len(pending))
        jobs, handles = [], {}
        for task in pending:
            trace = traces[task.trace_id]
            if isinstance(trace, BaseException):
                _record(sweep, summary, listener, _failed_row(task, trace, "trace: "), None)
                continue
            if task.trace_id not in handles:
                handles[task.trace_id] = ex.share(trace)
            jobs.append((task, handles[task.trace_id]))
        for i, result in ex.imap_unordered(run_one, jobs):
            if isinstance(result, BaseException):
                _record(sweep, summary, listener, _failed_row(jobs[i][0], result), None)
            else:
                _record(sweep, summary, listener, result.row, result.requests)
    summary.wall_s = time.perf_counter() - started
    return summary


def _traces(
    ex, grid: Grid, pending: list[RunTask], sweep: SweepDir, listener: SweepListener
) -> dict[str, pd.DataFrame | BaseException]:
    """The traces the pending runs need: read from DIR/traces, or built on the executor."""
    needed = list(dict.fromkeys(r.trace_id for r in pending))
    out: dict[str, pd.DataFrame | BaseException] = {}
    to_build = []
    for trace_id in needed:
        cached = sweep.trace(trace_id)
        if cached.exists():
            try:
                out[trace_id] = read_trace(cached)[0]
                continue
            except TraceError:
                pass  # a damaged cache file: build it again
        to_build.append(grid.traces[trace_id])
    if not to_build:
        return out
    listener.traces_started(len(to_build))
    for i, result in ex.imap_unordered(make_trace, [(t,) for t in to_build]):
        task = to_build[i]
        if not isinstance(result, BaseException):
            df, meta = result
            write_trace(df, sweep.trace(task.trace_id), {**meta, "trace_id": task.trace_id})
            result = df
        out[task.trace_id] = result
        listener.trace_done(not isinstance(result, BaseException))
    return out


def _failed_row(task: RunTask, error: BaseException, prefix: str = "") -> dict:
    return {**task.columns, "status": "failed", "error": prefix + one_line(error), "wall_s": 0.0}


def _record(
    sweep: SweepDir,
    summary: SweepSummary,
    listener: SweepListener,
    row: dict,
    requests: pd.DataFrame | None,
) -> None:
    write_result(sweep, row, requests)
    if row["status"] == "ok":
        summary.ok += 1
    else:
        summary.failed += 1
        summary.failures.append((row["run_id"], row["policy"], row["error"]))
    listener.run_done(row)
