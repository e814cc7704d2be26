"""The per-step table: one row per engine step, in growable numpy columns."""

from __future__ import annotations

import numpy as np

from traces.results import PREFIX_STEP_COLUMNS, STEP_COLUMNS

# The columns of steps.parquet besides `step`.
COLUMNS = (*STEP_COLUMNS[1:], *PREFIX_STEP_COLUMNS)
FLOAT_COLUMNS = frozenset({"start_s", "duration_s"})


class StepLog:
    """Step rows; a fast-forward stretch appends many at once. end_s[g] is step g's end."""

    def __init__(self, capacity: int = 4096) -> None:
        self.n = 0
        self.cols = {
            c: np.zeros(capacity, np.float64 if c in FLOAT_COLUMNS else np.int64) for c in COLUMNS
        }
        self.end_s = np.zeros(capacity, np.float64)

    def _reserve(self, extra: int) -> None:
        need = self.n + extra
        cap = len(self.end_s)
        if need <= cap:
            return
        cap = max(need, cap * 2)
        for c, a in self.cols.items():
            b = np.zeros(cap, a.dtype)
            b[: self.n] = a[: self.n]
            self.cols[c] = b
        e = np.zeros(cap, np.float64)
        e[: self.n] = self.end_s[: self.n]
        self.end_s = e

    def append(self, end_s: float, **row) -> None:
        """One step; columns not given are 0."""
        if self.n == len(self.end_s):
            self._reserve(1)
        cols, n = self.cols, self.n
        for c, v in row.items():
            cols[c][n] = v
        self.end_s[n] = end_s
        self.n = n + 1

    def extend(self, k: int, end_s: np.ndarray, **cols) -> None:
        """k steps at once; each column a scalar or an array of k; columns not given are 0."""
        self._reserve(k)
        s = slice(self.n, self.n + k)
        for c, v in cols.items():
            self.cols[c][s] = v
        self.end_s[s] = end_s
        self.n += k

    def start_of(self, g: int) -> float:
        return float(self.cols["start_s"][g])

    def frame_dict(self) -> dict[str, np.ndarray]:
        out = {"step": np.arange(self.n)}
        out.update({c: a[: self.n].copy() for c, a in self.cols.items()})
        return out
