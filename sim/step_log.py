"""The per-step table: one row per engine step, in growable numpy columns."""

from __future__ import annotations

import numpy as np

from traces.results import PREFIX_STEP_COLUMNS, STEP_COLUMNS

# The columns of steps.parquet besides `step`.
COLUMNS = (*STEP_COLUMNS[1:], *PREFIX_STEP_COLUMNS)
FLOAT_COLUMNS = frozenset({"start_s", "duration_s"})
GAP_BLOCK = 32


class StepLog:
    """Step rows; a fast-forward stretch appends many at once. end_s[g] is step g's end.

    Step ends, and the gap from each step's end to the next one's, are also kept as
    Python lists: a finishing decoder asks for the largest gap over its steps, and a
    slice of a list beats numpy's fixed cost per call at the few hundred steps asked."""

    def __init__(self, capacity: int = 4096) -> None:
        self.n = 0
        self._capacity = capacity
        self.cols = {
            c: np.zeros(capacity, np.float64 if c in FLOAT_COLUMNS else np.int64) for c in COLUMNS
        }
        self._arrays = [self.cols[c] for c in COLUMNS]  # the same arrays, in COLUMNS order
        self._ends: list[float] = []
        self._gaps: list[float] = []  # _gaps[g] = end of step g - end of step g - 1 (g >= 1)
        self._end_array = np.zeros(0, np.float64)
        self._block_max: list[float] = []  # max of _gaps[b * GAP_BLOCK : (b + 1) * GAP_BLOCK]

    @property
    def end_s(self) -> np.ndarray:
        """Every step's end, as an array (built from the list on demand)."""
        if len(self._end_array) != self.n:
            self._end_array = np.array(self._ends, np.float64)
        return self._end_array

    def _reserve(self, extra: int) -> None:
        need = self.n + extra
        cap = self._capacity
        if need <= cap:
            return
        cap = max(need, cap * 2)
        for c, a in self.cols.items():
            b = np.zeros(cap, a.dtype)
            b[: self.n] = a[: self.n]
            self.cols[c] = b
        self._capacity = cap
        self._arrays = [self.cols[c] for c in COLUMNS]

    def append_row(self, end_s: float, row: tuple) -> None:
        """One step given as every column's value, in COLUMNS order (the engine's step)."""
        n = self.n
        if n == self._capacity:
            self._reserve(1)
        for a, v in zip(self._arrays, row, strict=True):
            a[n] = v
        ends = self._ends
        self._gaps.append(end_s - ends[-1] if n else 0.0)
        ends.append(end_s)
        self.n = n + 1

    def append(self, end_s: float, **row) -> None:
        """One step; columns not given are 0."""
        n = self.n
        if n == self._capacity:
            self._reserve(1)
        cols = self.cols
        for c, v in row.items():
            cols[c][n] = v
        ends = self._ends
        self._gaps.append(end_s - ends[-1] if n else 0.0)
        ends.append(end_s)
        self.n = n + 1

    def extend(self, k: int, end_s: np.ndarray, **cols) -> None:
        """k steps at once; each column a scalar or an array of k; columns not given are 0."""
        self._reserve(k)
        s = slice(self.n, self.n + k)
        for c, v in cols.items():
            self.cols[c][s] = v
        ends = np.broadcast_to(np.asarray(end_s, np.float64), (k,))
        gaps = np.diff(ends, prepend=self._ends[-1] if self.n else ends[0])
        self._ends += ends.tolist()
        self._gaps += gaps.tolist()
        self.n += k

    def start_of(self, g: int) -> float:
        return float(self.cols["start_s"][g])

    def end_of(self, g: int) -> float:
        return self._ends[g]

    def max_gap(self, lo: int, hi: int) -> float:
        """The largest end-to-end gap between consecutive steps lo - 1 .. hi - 1 (lo >= 1,
        lo < hi): max over g in [lo, hi) of end_of(g) - end_of(g - 1). Long ranges read
        the maxima of whole blocks of GAP_BLOCK gaps, kept as they fill."""
        gaps = self._gaps
        if hi - lo < 3 * GAP_BLOCK:
            return max(gaps[lo:hi])
        b_lo = -(-lo // GAP_BLOCK)
        b_hi = hi // GAP_BLOCK
        bmax = self._block_max
        for b in range(len(bmax), b_hi):
            bmax.append(max(gaps[b * GAP_BLOCK : (b + 1) * GAP_BLOCK]))
        best = max(bmax[b_lo:b_hi])
        head = gaps[lo : b_lo * GAP_BLOCK]
        if head:
            best = max(best, max(head))
        tail = gaps[b_hi * GAP_BLOCK : hi]
        if tail:
            best = max(best, max(tail))
        return best

    def frame_dict(self) -> dict[str, np.ndarray]:
        out = {"step": np.arange(self.n)}
        out.update({c: a[: self.n].copy() for c, a in self.cols.items()})
        return out
