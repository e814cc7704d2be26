"""The time a training run has left, from the steps it has done: printed once after the
first few steps (so a user on a slow machine learns within a minute that a run will take
hours) and with every later progress line."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

FIRST_REPORT_STEPS = 5


def format_duration(seconds: float) -> str:
    """3 h 12 min, 4 min 10 s, 12 s."""
    s = max(0, round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60} min"
    if s >= 60:
        return f"{s // 60} min {s % 60} s"
    return f"{s} s"


@dataclass
class Eta:
    """Time left = time per step so far x steps left (training steps; each epoch's
    validation pass comes on top)."""

    total_steps: int
    clock: Callable[[], float] = time.perf_counter
    first_report: int = FIRST_REPORT_STEPS
    started_s: float = field(init=False)
    done: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.started_s = self.clock()

    def step(self) -> str | None:
        """Count one step; the line to print when it is the first report's step."""
        self.done += 1
        if self.done == min(self.first_report, self.total_steps):
            return f"step {self.done}/{self.total_steps}: {self.left()}"
        return None

    def left_s(self) -> float:
        per_step = (self.clock() - self.started_s) / max(1, self.done)
        return per_step * (self.total_steps - self.done)

    def left(self) -> str:
        return f"about {format_duration(self.left_s())} left"
