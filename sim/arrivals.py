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
        times = arrival_s + overhead_s if overhead_s else arrival_s
        # As lists: read once per request, where numpy's scalar access costs.
        open_idx = np.flatnonzero(~held)
        self._open = open_idx.tolist()
        self._open_times = times[open_idx].tolist()
        self._i = 0
        self._released: list[tuple[float, int]] = []
        self.pending = len(arrival_s)
        self._next = self._compute_next()

    def _compute_next(self) -> float:
        t = math.inf
        if self._i < len(self._open):
            t = self._open_times[self._i]
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
        times, idxs, released = self._open_times, self._open, self._released
        i, n_open = self._i, len(idxs)
        while True:
            a = times[i] if i < n_open else math.inf
            if released:
                b, b_idx = released[0]
                if a < b or (a == b and idxs[i] < b_idx):
                    if a > now:
                        break
                    out.append(idxs[i])
                    i += 1
                else:
                    if b > now:
                        break
                    heapq.heappop(released)
                    out.append(b_idx)
            else:
                if a > now:
                    break
                out.append(idxs[i])
                i += 1
        self._i = i
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
