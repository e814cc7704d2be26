"""A sweep's progress on stderr: a rich bar on a terminal, a plain line per finished run
elsewhere (a log, CI), so a long sweep is never silent; on Ctrl-C, how many runs are done
and that a rerun resumes."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from analysis.sweep import SweepListener


class RichSweepProgress(SweepListener):
    """Two bars on stderr (traces built, runs); when stderr is not a terminal, one line
    per finished trace build and run instead."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.bar = Progress(
            TextColumn("{task.description:>6}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "[green]{task.fields[ok]} ok[/] [red]{task.fields[failed]} failed[/] "
                "{task.fields[left]} left"
            ),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.console.is_terminal,
        )
        self.lines = not self.console.is_terminal
        self._traces = self._runs = None
        self.ok = self.failed = self.left = 0
        self.total = self.done_before = self.traces_total = self.traces_done = 0

    def __enter__(self) -> RichSweepProgress:
        self.bar.start()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.bar.stop()
        if exc_type is KeyboardInterrupt and self._runs is None:
            self._say(
                f"interrupted while building traces ({self.traces_done} of "
                f"{self.traces_total} built and saved); rerun the same command to resume"
            )
        elif exc_type is KeyboardInterrupt:
            done = self.done_before + self.ok + self.failed
            grid = self.done_before + self.total
            self._say(
                f"interrupted: {done} of {grid} runs done and saved, {self.left} left; "
                "rerun the same command to resume (it skips the runs done)"
            )

    def _say(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def traces_started(self, total: int) -> None:
        self.traces_total = total
        self._traces = self.bar.add_task("traces", total=total, ok=0, failed=0, left=total)

    def trace_done(self, ok: bool) -> None:
        self.traces_done += 1
        if self.lines:
            self._say(
                f"trace {self.traces_done}/{self.traces_total} " + ("built" if ok else "failed")
            )
        fields = self.bar.tasks[self._traces].fields
        key = "ok" if ok else "failed"
        self.bar.update(self._traces, advance=1, left=fields["left"] - 1, **{key: fields[key] + 1})

    def runs_started(self, total: int, done_before: int, pending: int) -> None:
        self.left, self.total, self.done_before = pending, total, done_before
        self._runs = self.bar.add_task("runs", total=total, ok=0, failed=0, left=pending)

    def run_done(self, row: dict) -> None:
        if row["status"] == "ok":
            self.ok += 1
        else:
            self.failed += 1
        self.left -= 1
        if self.lines:
            self._say(run_line(row, self.ok + self.failed, self.total))
        if self._runs is not None:
            self.bar.update(self._runs, advance=1, ok=self.ok, failed=self.failed, left=self.left)


def run_line(row: dict, n: int, total: int) -> str:
    """'run 3/20 ok: 1a2b3c fcfs, mean latency 4.295 s, 2.1 s' (what was thrown away, or
    the error, when there is one)."""
    head = f"run {n}/{total} {row['status']}: {row.get('run_id', '?')} {row.get('policy', '')}"
    wall = f", {row['wall_s']:.1f} s" if row.get("wall_s") else ""
    if row["status"] != "ok":
        return f"{head}: {row.get('error', '')}{wall}"
    lat = row.get("mean_latency_s")
    text = f"{head}, mean latency {lat:.4g} s" if lat is not None else head
    if row.get("rejected"):
        text += f" over {row.get('completed', 0):,} of {row.get('requests', 0):,} requests"
        text += f" ({row['rejected']:,} rejected)"
    return text + wall
