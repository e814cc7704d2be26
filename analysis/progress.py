"""A rich progress bar for a sweep: runs done, failed and remaining, and the time left."""

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
    """Two bars on stderr (traces built, runs); silent when stderr is not a terminal."""

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
        self._traces = self._runs = None
        self.ok = self.failed = self.left = 0

    def __enter__(self) -> RichSweepProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()

    def traces_started(self, total: int) -> None:
        self._traces = self.bar.add_task("traces", total=total, ok=0, failed=0, left=total)

    def trace_done(self, ok: bool) -> None:
        fields = self.bar.tasks[self._traces].fields
        key = "ok" if ok else "failed"
        self.bar.update(self._traces, advance=1, left=fields["left"] - 1, **{key: fields[key] + 1})

    def runs_started(self, total: int, done_before: int, pending: int) -> None:
        self.left = pending
        self._runs = self.bar.add_task("runs", total=total, ok=0, failed=0, left=pending)

    def run_done(self, row: dict) -> None:
        if row["status"] == "ok":
            self.ok += 1
        else:
            self.failed += 1
        self.left -= 1
        if self._runs is not None:
            self.bar.update(self._runs, advance=1, ok=self.ok, failed=self.failed, left=self.left)
