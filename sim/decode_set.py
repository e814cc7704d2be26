"""The decode set: requests past their prefill that compute one token every step.

They are kept lazily, so a step costs O(1) in their number: request r's context at step
g is c0 + (g - g0), and the set keeps only aggregates (count, summed context, how many
cross a block boundary at each phase of the block size) and a heap of the steps at
which they complete. `stretch()` lays out k identical decode-only steps in closed form;
it returns what they would be and which requests finish, and changes nothing.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from policies.base import RequestCounters
from sim.request import SimRequest
from sim.step_log import StepLog


@dataclass
class Stretch:
    """k decode-only steps from step g: per step the batch and block figures, and the
    requests finishing inside, as (step of their last token, request), in step order."""

    k: int
    n: np.ndarray
    ctx: np.ndarray
    alloc: np.ndarray
    free_before: np.ndarray
    gone: np.ndarray
    finished: list[tuple[int, SimRequest]]


class DecodeSet:
    def __init__(self, reqs: list[SimRequest], block_size: int, steps: StepLog) -> None:
        self.reqs = reqs
        self.bs = block_size
        self.steps = steps
        self.n = 0
        self.ctx_a = 0  # sum over members of (c0 - g0); context at step g = ctx_a + n * g
        # Members per phase of the block size (a list: read every step, an array in stretches).
        self.phase = [0] * block_size
        self.completions: list = []  # (g of the last token, idx, version)

    def context(self, g: int) -> int:
        return self.ctx_a + self.n * g

    def allocations(self, g: int) -> int:
        """Blocks the members need at step g (their contexts crossing a block boundary)."""
        return self.phase[g % self.bs]

    def enter(self, r: SimRequest, g: int) -> None:
        r.decoding = True
        r.lazy = True
        r.g0, r.c0, r.gen0 = g, r.num_computed, r.generated
        r.steps_run0, r.service0 = r.view.steps_run, r.view.service_s
        self.n += 1
        self.ctx_a += r.c0 - g
        self.phase[(g - r.c0) % self.bs] += 1
        r.version += 1
        heapq.heappush(self.completions, (g + (r.output - r.generated) - 1, r.idx, r.version))

    def materialize(self, r: SimRequest, g: int) -> None:
        """Fold r's lazy steps g0..g-1 into its counters and times; it stays lazy."""
        k = g - r.g0
        if k <= 0:
            return
        steps, g0 = self.steps, r.g0
        first = steps.end_of(g0)
        if math.isnan(r.first_token_s):  # its last prefill token ran as a decode step
            r.first_token_s = first
            gap = steps.max_gap(g0 + 1, g) if k > 1 else 0.0
        else:
            gap = first - r.last_token_s
            if k > 1:
                gap = max(gap, steps.max_gap(g0 + 1, g))
        if gap > r.max_gap_s:
            r.max_gap_s = gap
        r.last_token_s = steps.end_of(g - 1)
        self.peek(r, g)
        r.num_computed = r.c0 + k
        r.generated = r.gen0 + k
        r.skip_from = g
        r.blocks = -(-r.num_computed // self.bs)
        # Rebase; (c0 - g0), the phase and ctx_a are unchanged by it.
        r.g0, r.c0, r.gen0 = g, r.num_computed, r.generated
        r.steps_run0, r.service0 = r.view.steps_run, r.view.service_s

    def peek(self, r: SimRequest, g: int, now: float | None = None) -> None:
        """Bring r's view to step g without folding: the counters as of g0, then its
        k lazy steps through RequestCounters."""
        v = r.view
        k = g - r.g0
        v.tokens_generated = r.gen0 + k
        v.steps_run, v.service_s = r.steps_run0, r.service0
        if k:
            end = self.steps.end_of(g - 1)
            RequestCounters.on_scheduled(v, k, end, end - self.steps.start_of(r.g0))
        else:  # entered at g, scheduled in step g
            v.steps_waiting = 0
            v.running = True
            if now is not None:
                v.waiting_since_s = now

    def leave(self, r: SimRequest, g: int) -> None:
        self.materialize(r, g)
        r.lazy = False
        self.n -= 1
        self.ctx_a -= r.c0 - r.g0
        self.phase[(r.g0 - r.c0) % self.bs] -= 1
        r.version += 1

    # ------------------------------------------------------------ completions
    def _valid(self, idx: int, ver: int) -> SimRequest | None:
        r = self.reqs[idx]
        return r if r.version == ver and r.lazy else None

    def next_completion(self) -> int | None:
        h = self.completions
        while h:
            g_done, idx, ver = h[0]
            if self._valid(idx, ver):
                return g_done
            heapq.heappop(h)
        return None

    def pop_completed(self, g: int) -> list[tuple[int, SimRequest]]:
        """Members whose last token is at a step < g, in step order, taken off the heap."""
        out = []
        h = self.completions
        while h and h[0][0] < g:
            gc, idx, ver = heapq.heappop(h)
            r = self._valid(idx, ver)
            if r is not None:
                out.append((gc, r))
        return out

    def restore(self, fin: list[tuple[int, SimRequest]]) -> None:
        for gc, r in fin:
            heapq.heappush(self.completions, (gc, r.idx, r.version))

    # ---------------------------------------------------------------- stretch
    def stretch(
        self, g: int, k: int, free: int, freed: Callable[[SimRequest, int], int]
    ) -> Stretch:
        """Up to k decode-only steps from g with `free` blocks: cut before the first step
        whose block allocations do not fit or that has no batch left. freed(r, blocks):
        how many of a finishing request's blocks return to the pool (no more than that)."""
        fin = self.pop_completed(g + k)
        s_rel = np.array([gc - g for gc, _ in fin], dtype=np.int64)
        j = np.arange(k, dtype=np.int64)
        gone = np.searchsorted(s_rel, j, side="left")  # completed before step j
        n = self.n - gone
        d_a = np.array([r.c0 - r.g0 for _, r in fin], dtype=np.int64)
        a = self.ctx_a - np.concatenate(([0], np.cumsum(d_a)))[gone]
        ctx = a + n * (g + j)
        alloc = np.resize(np.roll(np.array(self.phase, np.int64), -(g % self.bs)), k)
        freed_after = np.zeros(k + 1, dtype=np.int64)  # blocks freed at the end of step j
        for (gc, r), sr in zip(fin, s_rel, strict=True):
            ph = (r.g0 - r.c0) % self.bs
            j1 = sr + 1 + (ph - (g + sr + 1)) % self.bs
            alloc[j1 :: self.bs] -= 1
            freed_after[sr] += freed(r, -(-(r.c0 + gc + 1 - r.g0) // self.bs))
        free_before = (
            free
            - np.concatenate(([0], np.cumsum(alloc)[:-1]))
            + np.concatenate(([0], np.cumsum(freed_after[: k - 1])))
        )
        short = np.flatnonzero((alloc > free_before) | (n == 0))  # no room, or no batch left
        if len(short):
            k = int(short[0])
        return Stretch(k, n, ctx, alloc, free_before, gone, fin)
