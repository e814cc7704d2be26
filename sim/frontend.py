"""The front end: what sits before the engine cores, as vLLM's API server and its client.

It owns the trace's arrivals and closed-loop sessions (a later turn is sent think_s
after the previous turn ended, answered or refused) and the per-request overhead, and
pushes each request when it is due to the engine core that `deliver` picks (one engine,
or a router over a fleet). Dispatch happens at SimPy events of URGENT priority at the
dispatch time, so everything due at time t is delivered before any engine core plans
the step that starts at t (engine steps end at NORMAL-priority events).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

import numpy as np
import simpy
from simpy.events import NORMAL, URGENT

from sim.arrivals import ArrivalQueue
from sim.request import SimRequest


class ExactEnvironment(simpy.Environment):
    """A SimPy environment whose events can be scheduled at an absolute time, so equal
    times stay equal (now + (t - now) need not be t in floating point)."""

    def at(self, t: float, priority: int = NORMAL) -> simpy.Event:
        ev = simpy.Event(self)
        ev._ok = True
        ev._value = None
        heapq.heappush(self._queue, (max(t, self._now), priority, next(self._eid), ev))
        return ev


class FrontEnd:
    """Arrivals and session turns of one trace; delivers each request when it is due."""

    def __init__(
        self,
        reqs: list[SimRequest],
        arrival_s: np.ndarray,
        successor: np.ndarray | None,
        think_s: np.ndarray | None,
        overhead_s: float = 0.0,
    ) -> None:
        n = len(reqs)
        self.reqs = reqs
        succ = successor if successor is not None else np.full(n, -1, np.int64)
        held = np.zeros(n, bool)
        held[succ[succ >= 0]] = True
        for r in reqs:
            r.successor = int(succ[r.idx])
            if think_s is not None:
                r.think_s = float(think_s[r.idx])
        self.has_sessions = bool(held.any())
        # The earliest a finish can lead to a dispatch: think time plus overhead.
        self.min_release_delay_s = (
            float(think_s[held].min()) + overhead_s
            if self.has_sessions and think_s is not None
            else overhead_s
        )
        self.arrivals = ArrivalQueue(arrival_s, held, overhead_s)
        self.env: ExactEnvironment | None = None
        self.deliver: Callable[[SimRequest, float], None] | None = None
        self.before_dispatch: Callable[[float], None] | None = None
        self.stopped = False
        self._woken: set[float] = set()

    def attach(
        self,
        env: ExactEnvironment,
        deliver: Callable[[SimRequest, float], None],
        before_dispatch: Callable[[float], None] | None = None,
    ) -> None:
        """deliver(request, now): push it to an engine core; before_dispatch(now): called
        first at each dispatch time (a fleet's load refresh ticks)."""
        self.env, self.deliver, self.before_dispatch = env, deliver, before_dispatch
        self._wake_at(self.next_time())

    def next_time(self) -> float:
        """When the next known request is due at the engines (inf: none known)."""
        return self.arrivals.next_time()

    def pending(self) -> int:
        return self.arrivals.pending

    def dispatch_until(self, now: float) -> None:
        """Deliver every request due at or before `now`, in arrival order."""
        if self.stopped or self.arrivals.next_time() > now:
            return
        if self.before_dispatch is not None:
            self.before_dispatch(now)
        for idx in self.arrivals.due(now):
            self.deliver(self.reqs[idx], now)
        self._wake_at(self.next_time())

    def release_next_turn(self, r: SimRequest, done_s: float) -> None:
        """r's session sends its next turn think_s after r's answer (or refusal)."""
        if r.successor < 0:
            return
        nxt = self.reqs[r.successor]
        sent = self.arrivals.release(nxt.idx, done_s + nxt.think_s)
        nxt.view.arrival_s = sent
        nxt.view.waiting_since_s = sent
        self._wake_at(self.arrivals.next_time())

    def _wake_at(self, t: float) -> None:
        if t == math.inf or self.env is None or t in self._woken or self.stopped:
            return
        self._woken.add(t)
        ev = self.env.at(t, URGENT)
        ev.callbacks.append(lambda _ev, t=t: self._on_wake(t))

    def _on_wake(self, t: float) -> None:
        self._woken.discard(t)
        self.dispatch_until(t)
