"""When requests reach the engine: the trace's arrival times, and closed-loop sessions.

A session's first turn arrives at its traced time; each later turn arrives think_s
after the previous turn finishes (or is rejected), as a chat client sends it. The engine
sees a request request_overhead_s after the client sent it (the front-end's share).
"""

from __future__ import annotations

import heapq
import math

import numpy as np


class ArrivalQueue:
    """Requests not yet arrived, in arrival order; ties by request index."""

    def __init__(self, arrival_s: np.ndarray, held: np.ndarray, overhead_s: float = 0.0) -> None:
        self.overhead_s = overhead_s
        # Open-loop requests in trace order; held ones (later turns) wait for release.
        self._times = arrival_s + overhead_s if overhead_s else arrival_s
        self._open = np.flatnonzero(~held)
        self._i = 0
        self._released: list[tuple[float, int]] = []
        self.pending = len(arrival_s)
        self._next = self._compute_next()

    def _compute_next(self) -> float:
        t = math.inf
        if self._i < len(self._open):
            t = float(self._times[self._open[self._i]])
        if self._released and self._released[0][0] < t:
            t = self._released[0][0]
        return t

    def next_time(self) -> float:
        return self._next

    def due(self, now: float) -> list[int]:
        """Indices of the requests that have arrived by `now`, in arrival order."""
        if self._next > now:
            return []
        out = []
        while True:
            a = self._times[self._open[self._i]] if self._i < len(self._open) else math.inf
            b = self._released[0] if self._released else (math.inf, -1)
            if min(a, b[0]) > now:
                break
            if a < b[0] or (a == b[0] and self._open[self._i] < b[1]):
                out.append(int(self._open[self._i]))
                self._i += 1
            else:
                heapq.heappop(self._released)
                out.append(b[1])
        self.pending -= len(out)
        self._next = self._compute_next()
        return out

    def release(self, idx: int, client_send_s: float) -> float:
        """A held request is sent by its client at client_send_s; returns that time."""
        heapq.heappush(self._released, (client_send_s + self.overhead_s, idx))
        self._next = self._compute_next()
        return client_send_s

    def exhausted(self) -> bool:
        return self.pending == 0

    def arrival_due(self, now: float) -> bool:
        return self._next <= now
