"""One replay as the plug-in sees it: the policy object, the request views, the clock
and the step log. A new run id starts a fresh PolicyRun, so one engine can replay
several policies in turn without a restart."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from live.config import PluginConfig
from live.steplog import StepLogWriter, StepRecord
from live.tracker import RequestTracker
from live.xargs import RequestTag
from policies import make_policy
from policies.base import Policy, RequestView
from policies.fcfs import FCFS
from policies.views import views_from_trace

log = logging.getLogger("ltrsched.live")


@dataclass
class PolicyRun:
    """The policy, views and log of one run, on one clock.

    Times given to the policy are seconds since t0 (time.monotonic() of the driver at
    trace time 0; CLOCK_MONOTONIC is shared by all processes of a machine). Without a
    t0 from the driver, the first request's arrival fixes it. A request without a traced
    arrival arrives at its Request.arrival_time (vLLM's wall clock), moved onto this
    clock by one offset taken at the first request, so their order is vLLM's."""

    run_id: str
    config: PluginConfig
    policy: Policy
    t0: float | None = None
    tracker: RequestTracker = field(default_factory=RequestTracker)
    writer: StepLogWriter | None = None
    error: str | None = None
    steps: int = 0  # steps scheduled so far in this run
    header: dict[str, Any] = field(default_factory=dict)
    wall_to_run_s: float | None = None  # run clock = time.time() + this

    @classmethod
    def start(cls, run_id: str, config: PluginConfig, t0: float | None,
              header: dict[str, Any]) -> PolicyRun:
        """Build the policy, prepare it on the trace when one is given, open the log.
        A failure here is logged and the run falls back to arrival order."""
        writer = StepLogWriter(config.step_log) if config.step_log else None
        run = cls(run_id, config, FCFS(), t0, writer=writer)
        run.tracker.on_drop = lambda request_id: run.policy.forget(request_id)
        try:
            run.policy = make_policy(config.policy)
            if config.trace:
                from traces.io import read_trace

                df, _ = read_trace(config.trace)
                run.policy.prepare(views_from_trace(df))
        except Exception as e:  # noqa: BLE001 - the engine must keep serving
            run.fail(f"policy {config.policy!r}: {e}")
        run.header = {"run": run_id, "policy": run.policy.describe(), "spec": config.policy,
                      "trace": config.trace, "t0": t0, **header}
        if writer is not None:
            writer.header(**run.header)
        return run

    def now_s(self, monotonic_s: float) -> float:
        return monotonic_s - (self.t0 if self.t0 is not None else monotonic_s)

    def add(self, request: Any, tag: RequestTag, monotonic_s: float) -> RequestView:
        if self.t0 is None:
            self.t0 = monotonic_s - (tag.arrival_s or 0.0)
        now_s = self.now_s(monotonic_s)
        if self.wall_to_run_s is None:
            self.wall_to_run_s = now_s - time.time()
        arrival = getattr(request, "arrival_time", None)
        arrived_s = None if arrival is None else float(arrival) + self.wall_to_run_s
        return self.tracker.add(request, tag, now_s, arrived_s)

    def rank_keys(self, monotonic_s: float) -> tuple[dict[str, tuple], bool]:
        """Every live request's key and whether waiting ones may have moved (see
        RequestTracker.rank_keys); on a policy error, fall back to arrival order."""
        try:
            return self.tracker.rank_keys(self.policy, self.now_s(monotonic_s))
        except Exception as e:  # noqa: BLE001
            self.fail(f"policy {self.policy.describe()}: {e}")
            return self.tracker.rank_keys(self.policy, self.now_s(monotonic_s))

    def fail(self, message: str) -> None:
        """Record the first failure, switch to arrival order, keep the engine running."""
        if self.error is None:
            self.error = message
            log.warning("ltrsched plug-in, run %s: %s; falling back to arrival order",
                        self.run_id, message)
            if self.writer is not None:
                self.writer.error(self.run_id, message)
        self.policy = FCFS()
        self.tracker.forget_keys()

    def log_step(self, rec: StepRecord) -> None:
        if self.writer is not None:
            self.writer.step(self.run_id, rec)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
