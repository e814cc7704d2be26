"""A fleet: N engine cores in one SimPy environment behind a router.

The front end (sim/frontend.py) dispatches each request when it is due; the router
(policies/routing/base.Router) picks its replica from every replica's load and, for
prefix-aware routers, from the replicas' own prefix caches. One replica with no router
is the single server of `ltrsched simulate`.

Order of equal-time events, so runs are deterministic and fast mode equals
step-by-step mode: a load refresh tick at time t comes first, then every request due
at or before t is routed and pushed, then the replicas plan the steps that start at t.
A replica's load at time t is its state after the steps that ended by t; during a step,
the step as planned (its row in steps.parquet) plus the requests pushed since. A
fast-forward stretch never runs past the next time anything could be dispatched: the
next known arrival, the next refresh tick, and, in a fleet, the earliest a session turn
or a stop_after count could be released by a finish on another replica.
"""

from __future__ import annotations

import copy
import heapq
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from simpy.events import URGENT

from policies.base import Policy
from policies.routing.base import ReplicaLoad, Router, RouteRequest
from sim.config import EngineConfig
from sim.engine import EngineCore
from sim.errors import SimError
from sim.frontend import ExactEnvironment, FrontEnd
from sim.prefix_keys import KeyTable
from sim.profile import StepTimeProfile
from sim.request import FINISHED, SimRequest


@dataclass(frozen=True)
class ReplicaSpec:
    """One replica of a fleet: its step-time profile, engine limits and KV pool."""

    profile: StepTimeProfile
    config: EngineConfig
    num_gpu_blocks: int
    num_gpu_blocks_how: str = "given"


@dataclass(frozen=True)
class FleetConfig:
    """router_refresh_s: the router sees replica loads as of the latest refresh tick,
    every this many seconds (0: exact, at the dispatch itself)."""

    router_refresh_s: float = 0.0

    def validate(self) -> None:
        if not self.router_refresh_s >= 0 or math.isinf(self.router_refresh_s):
            raise SimError("--router-refresh-s: must be a finite number >= 0")


class Fleet:
    """Runs one trace on N replicas behind a router; each replica has its own policy."""

    def __init__(
        self,
        reqs: list[SimRequest],
        policies: Sequence[Policy],
        replicas: Sequence[ReplicaSpec],
        router: Router | None = None,
        fleet: FleetConfig | None = None,
        keys: KeyTable | None = None,
        successor: np.ndarray | None = None,
        think_s: np.ndarray | None = None,
        session_id: np.ndarray | None = None,
        turn: np.ndarray | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        if not replicas:
            raise SimError("a fleet needs at least one replica")
        if router is None and len(replicas) > 1:
            raise SimError(f"{len(replicas)} replicas need a router (--router)")
        self.fleet_cfg = fleet or FleetConfig()
        self.fleet_cfg.validate()
        self.reqs = reqs
        self.router = router
        self.progress = progress
        n = len(reqs)
        arr = np.array([r.view.arrival_s for r in reqs], dtype=np.float64)
        if n > 1 and (np.diff(arr) < 0).any():
            raise SimError("trace arrivals must be sorted by arrival_s")
        succ = successor if successor is not None else np.full(n, -1, np.int64)
        totals = np.array([r.prompt + r.output for r in reqs], np.int64)
        overhead = getattr(replicas[0].profile, "request_overhead_s", 0.0)
        self.frontend = FrontEnd(reqs, arr, succ, think_s, overhead)
        self.session_id = session_id
        self.turn = turn
        self.engines = [
            EngineCore(
                reqs, pol, spec.profile, spec.config, spec.num_gpu_blocks, keys, succ, totals, i
            )
            for i, (pol, spec) in enumerate(zip(policies, replicas, strict=True))
        ]
        for e in self.engines:
            e.host = self
        self.specs = list(replicas)
        self.replica_of = np.full(n, -1, np.int64)
        self.finished = 0
        self.rejected = 0
        self.stop_after = replicas[0].config.stop_after
        self._finish_times: list[float] = []
        self._finished_by_t = 0
        self.stopped = False
        self.stopped_early = False
        self.wall_s = 0.0
        self._last_report = 0
        self._refresh_s = self.fleet_cfg.router_refresh_s
        self._tick_k = 0
        self._tick_loads: list[ReplicaLoad] | None = None
        self.env: ExactEnvironment | None = None

    # ------------------------------------------------------------- routing
    def loads(self, t: float) -> list[ReplicaLoad]:
        """Every replica's load at time t, exactly."""
        return [e.load(t) for e in self.engines]

    def lazy_loads(self, t: float) -> Sequence[ReplicaLoad]:
        """The same, each computed when a router first reads it (round-robin reads none)."""
        return _LazyLoads(self.engines, t)

    def cached_prefix_tokens(self, replica: int, request_id: int) -> int:
        """PrefixProbe: the leading prompt tokens `replica`'s cache would give the request."""
        kv = self.engines[replica].kv
        if not kv.enabled:
            return 0
        return kv.lookup(self.reqs[request_id])[0] * kv.block_size

    def _deliver(self, r: SimRequest, now: float) -> None:
        i = self._route(r, now)
        self.replica_of[r.idx] = i
        self.engines[i].add_request(r, now)

    def _route(self, r: SimRequest, now: float) -> int:
        if self.router is None:
            return 0
        loads = self._tick_loads if self._refresh_s > 0 else self.lazy_loads(now)
        req = RouteRequest(
            r.view,
            int(self.session_id[r.idx]) if self.session_id is not None else -1,
            int(self.turn[r.idx]) if self.turn is not None else 0,
        )
        i = self.router.route(req, loads, self, now)
        if not 0 <= i < len(self.engines):
            raise SimError(
                f"router {self.router.describe()} sent request {r.view.request_id} to "
                f"replica {i}; there are {len(self.engines)}"
            )
        return int(i)

    # ------------------------------------------------------ refresh ticks
    def _next_tick(self) -> float:
        return self._tick_k * self._refresh_s

    def _schedule_tick(self) -> None:
        t = self._next_tick()
        ev = self.env.at(t, URGENT)
        ev.callbacks.append(lambda _ev, t=t: self._tick(t))

    def _tick(self, t: float) -> None:
        """Refresh the loads the router sees, at tick time t (once per tick)."""
        if t != self._next_tick():
            return
        self._tick_loads = self.loads(t)
        self._tick_k += 1
        if self.frontend.pending() and not self.stopped:
            self._schedule_tick()

    def _before_dispatch(self, now: float) -> None:
        if self._refresh_s > 0 and self._next_tick() <= now:
            self._tick(self._next_tick())

    # ------------------------------------------------ engine cores' host
    def dispatch_until(self, now: float) -> None:
        self.frontend.dispatch_until(now)

    def dispatch_bound(self, core: EngineCore) -> float:
        """No request can reach `core` before this time (a stretch ends at the step that
        sees it)."""
        t = self.frontend.next_time()
        if self._refresh_s > 0 and self.frontend.pending():
            t = min(t, self._next_tick())
        if len(self.engines) > 1:
            delay = self.frontend.min_release_delay_s
            for e in self.engines:
                if e is core:
                    continue
                if e.session_holders:  # a finish there releases a turn, after a step
                    t = min(t, e.clock.now + delay)
                # stop_after counts finishes fleet-wide: one there (known up to its
                # clock, as its steps run eagerly) may end the run.
                if self.stop_after is not None and (
                    e.scheduler.has_work() or e.clock.now >= self.env.now
                ):
                    t = min(t, e.clock.now)
        return t

    def on_finished(self, core: EngineCore, r: SimRequest, done_s: float) -> None:
        """r finished on core (or core refused it): count it, release its session's next
        turn, tell the router."""
        if r.state == FINISHED:
            self.finished += 1
            if self.stop_after is not None:
                heapq.heappush(self._finish_times, r.finish_s)
        else:
            self.rejected += 1
        self.frontend.release_next_turn(r, done_s)
        if self.router is not None:
            self.router.on_finish(r.view.request_id, core.replica, done_s)

    def stopped_at(self, now: float) -> bool:
        """stop_after: whether that many requests have finished by `now` (fleet-wide)."""
        if self.stopped:
            return True
        if self.stop_after is None:
            return False
        h = self._finish_times
        while h and h[0] <= now:
            heapq.heappop(h)
            self._finished_by_t += 1
        if self._finished_by_t >= self.stop_after:
            self.stopped = True
            self.frontend.stopped = True
        return self.stopped

    def after_step(self) -> None:
        if self.progress is not None and self.finished - self._last_report >= 256:
            self._last_report = self.finished
            self.progress(self.finished + self.rejected, len(self.reqs))

    # -------------------------------------------------------------- running
    def run(self) -> Fleet:
        env = self.env = ExactEnvironment()
        views = [r.view for r in self.reqs]
        for e in self.engines:
            e.policy.prepare(views)
        if self.router is not None:
            self.router.prepare(views, len(self.engines))
        t0 = time.perf_counter()
        for e in self.engines:
            env.process(e.process(env))
        self.frontend.attach(env, self._deliver, self._before_dispatch)
        if self._refresh_s > 0:
            self._schedule_tick()
        env.run()
        self.wall_s = time.perf_counter() - t0
        n = len(self.reqs)
        self.stopped_early = self.stopped and self.finished < n - self.rejected
        if self.progress is not None:
            self.progress(self.finished + self.rejected, n)
        return self

    # ------------------------------------------------------------ totals
    @property
    def preemptions(self) -> int:
        return sum(e.preemptions for e in self.engines)


class _LazyLoads(Sequence):
    """Replica loads at one time, computed on first access."""

    def __init__(self, engines: list[EngineCore], t: float) -> None:
        self._engines = engines
        self._t = t
        self._got: dict[int, ReplicaLoad] = {}

    def __len__(self) -> int:
        return len(self._engines)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self._engines)
        if not 0 <= i < len(self._engines):
            raise IndexError(i)
        got = self._got.get(i)
        if got is None:
            got = self._got[i] = self._engines[i].load(self._t)
        return got


def replica_policies(policy: Policy, n: int) -> list[Policy]:
    """One policy object per replica (each vLLM server has its own scheduler)."""
    return [policy] + [copy.deepcopy(policy) for _ in range(n - 1)]
