"""Progress reporting for slow steps, kept out of the library's logic.

Loaders and the tokenizer call a Reporter; the CLI passes one that draws rich progress
bars on stderr, library callers and tests get the silent default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

Advance = Callable[[int], None]


class Reporter:
    """Silent reporter: `task` yields an advance(n) function that does nothing."""

    @contextmanager
    def task(self, description: str, total: int | None, unit: str = "items") -> Iterator[Advance]:
        yield lambda n: None


class RichReporter(Reporter):
    """Draws a transient rich progress bar per task, on stderr, only on a terminal."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)

    @contextmanager
    def task(self, description: str, total: int | None, unit: str = "items") -> Iterator[Advance]:
        count = DownloadColumn() if unit == "bytes" else MofNCompleteColumn()
        columns = (TextColumn("{task.description}"), BarColumn(), count, TimeElapsedColumn())
        with Progress(
            *columns,
            console=self.console,
            transient=True,
            disable=not self.console.is_terminal,
        ) as progress:
            task_id = progress.add_task(description, total=total)
            yield lambda n: progress.advance(task_id, n)
