"""Starvation prevention around any policy: SJF-like orders must still serve long requests.

Two orders among promoted requests. `paper` is vllm-ltr's (by the wrapped key): it
bounds waiting only in an engine that re-sorts running requests every step and preempts
the lowest-ranked (ltr-paper). `age` (longest waiting first) bounds it in vLLM V1 too,
where a promoted request only takes a seat that frees (sim's vllm-v1, the live plug-in).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from policies.base import INF, Policy, PolicyError, RequestView
from policies.registry import param, state

ORDERS = ("age", "paper")  # the order among promoted requests (see StarvationPrevention)
GUARANTEES = (
    "order=age (default): promoted requests go oldest wait first. Bounds waits in every "
    "engine: ltr-paper schedules promoted requests first at the next step, preempting "
    "lower-ranked ones; in vllm-v1 and live vLLM a promoted request takes the next free "
    "seat after those that began waiting before it (as FCFS would), so a tighter "
    "threshold gives shorter worst waits, down to FCFS's. "
    "order=paper (vllm-ltr's rule): promoted ones by the wrapped key. Bounds waits in "
    "ltr-paper only; in vllm-v1 and live vLLM, once most of a long queue is promoted the "
    "order is the wrapped one again, and tighter thresholds can lengthen the worst waits."
)


@dataclass(slots=True)
class Promotion:
    """Counters of a promoted request at its (last) promotion."""

    steps_run: int
    steps_waiting: int
    at_s: float
    # When the wait that promoted it began (RequestView.waiting_since_s then): its age.
    waiting_since_s: float = 0.0


@dataclass
class StarvationPrevention(Policy):
    """Promote a request that waited too long above all others for `quantum` steps it runs.

    Matches vllm-ltr (vllm/core/scheduler.py: counters set in `add_seq_group`, checked in
    `_get_opt_ordered_requests`, moved at the end of `_general_schedule`):
    - a waited step is an engine step in which the request, present (waiting, running or
      swapped), was not scheduled (RequestView.steps_waiting); running in a step resets it;
    - at the start of a step, a request that has waited >= `starvation` steps is promoted:
      its waited count restarts from 0 and it gets `quantum` runs; this check comes first,
      so a promoted request that waits `starvation` steps again is promoted afresh;
    - otherwise a promoted request that has run its `quantum` steps is demoted; its waited
      count goes on from its last run (0 if it just ran);
    - promoted requests come first. order=paper: among themselves by the wrapped key
      (vllm-ltr sorts by (promoted, -score)). order=age (default): by when the wait that
      promoted them began, oldest first, then by the wrapped key; a re-promotion without
      a run keeps that age. Then by arrival and request id.
    What each order guarantees: in ltr-paper mode promoted requests are scheduled first
    at the next step (the engine preempts the lowest-ranked to seat them), either order.
    In vllm-v1 mode and in the live plug-in a promoted request waits for a free seat; with
    order=age only requests that began waiting no later go before it, so after promotion
    it waits at most as FCFS would for them (ceil((older + 1) / max_num_seqs) service
    times when seats are the limit; tests/policies/test_policy_starvation.py). With
    order=paper, when most of a long queue is promoted the order is the wrapped one again
    and waits are unbounded.
    `max_wait_s` is the same rule with seconds since the request last ran (now_s -
    waiting_since_s) instead of steps; the quantum is in steps either way. vllm-ltr applies
    the rule to its LTR policy only; here any policy can be wrapped.
    """

    inner: Policy
    starvation: int | None = param(None, "promote after this many steps waited (paper: 200)")
    quantum: int = param(10, "steps a promoted request runs before demotion (paper: 10)")
    max_wait_s: float | None = param(None, "promote after this many seconds waited")
    order: str = param(
        "age",
        "promoted ones among themselves: age (longest waiting first: bounds waits in "
        "vllm-v1 and live) or paper (wrapped key, vllm-ltr: bounds them in ltr-paper only)",
    )
    promoted: dict[int, Promotion] = state()

    static_keys: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if isinstance(self.inner, StarvationPrevention):
            raise PolicyError("starvation prevention wraps a policy once")
        if self.starvation is None and self.max_wait_s is None:
            raise PolicyError(
                f"{self.inner.name}: quantum= and order= need starvation= or max_wait_s="
            )
        if self.starvation is not None and self.starvation < 1:
            raise PolicyError(f"{self.inner.name}: starvation must be >= 1, got {self.starvation}")
        if self.quantum < 1:
            raise PolicyError(f"{self.inner.name}: quantum must be >= 1, got {self.quantum}")
        if self.max_wait_s is not None and not self.max_wait_s > 0:
            raise PolicyError(f"{self.inner.name}: max_wait_s must be > 0, got {self.max_wait_s}")
        if self.order not in ORDERS:
            raise PolicyError(
                f"{self.inner.name}: order must be one of {', '.join(ORDERS)}, got {self.order!r}"
            )

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.inner.name

    @property
    def requires(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.inner.requires

    def prepare(self, requests: Sequence[RequestView]) -> None:
        self.promoted.clear()
        self.inner.prepare(requests)

    def steps_waited(self, r: RequestView) -> int:
        """Steps waited, counted from the last promotion if it has not run since."""
        p = self.promoted.get(r.request_id)
        if p is not None and r.steps_run == p.steps_run:
            return r.steps_waiting - p.steps_waiting
        return r.steps_waiting

    def seconds_waited(self, r: RequestView, now_s: float) -> float:
        p = self.promoted.get(r.request_id)
        since = r.waiting_since_s if p is None else max(r.waiting_since_s, p.at_s)
        return now_s - since

    def starved(self, r: RequestView, now_s: float) -> bool:
        return (self.starvation is not None and self.steps_waited(r) >= self.starvation) or (
            self.max_wait_s is not None and self.seconds_waited(r, now_s) >= self.max_wait_s
        )

    def key(self, r: RequestView, now_s: float) -> tuple:
        """(0 promoted / 1 not, [order=age: the promoted one's age,] the wrapped key);
        promotes and demotes on the way."""
        if self.starved(r, now_s):
            self.promoted[r.request_id] = Promotion(
                r.steps_run, r.steps_waiting, now_s, r.waiting_since_s
            )
        else:
            p = self.promoted.get(r.request_id)
            if p is not None and r.steps_run - p.steps_run >= self.quantum:
                del self.promoted[r.request_id]
        inner = self.inner.key(r, now_s)
        p = self.promoted.get(r.request_id)
        if self.order == "paper":
            return (0 if p is not None else 1, inner)
        return (0, p.waiting_since_s, inner) if p is not None else (1, 0.0, inner)

    def horizon(
        self, waiting: Sequence[RequestView], running: Sequence[RequestView], now_s: float
    ) -> tuple[float, float]:
        """The wrapped horizon, cut at the next promotion of a waiting request and at the
        end of a running promoted request's quantum. Re-promoting a promoted request that
        waits moves no request in the order, but it restarts the request's counters, so it
        cuts the horizon too: the policy's state then moves at the same steps whether an
        engine asks for keys every step or only at decision points."""
        steps, seconds = self.inner.horizon(waiting, running, now_s)
        for r in waiting:
            if self.starvation is not None:
                steps = min(steps, max(0, self.starvation - self.steps_waited(r)))
            if self.max_wait_s is not None:
                seconds = min(seconds, max(0.0, self.max_wait_s - self.seconds_waited(r, now_s)))
        for r in running:
            p = self.promoted.get(r.request_id)
            if p is not None:
                steps = min(steps, max(0, self.quantum - (r.steps_run - p.steps_run)))
        return (steps if steps == INF else int(steps), seconds)

    def notes(self) -> list[str]:
        return self.inner.notes()

    def forget(self, request_id: int) -> None:
        self.promoted.pop(request_id, None)
        self.inner.forget(request_id)

    def describe(self) -> str:
        inner = self.inner.describe()
        own = super().describe().partition(":")[2]
        return f"{inner}{',' if ':' in inner else ':'}{own}"
