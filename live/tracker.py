"""One RequestView per vLLM request: the adapter between vLLM's Request objects and the
policy contract. Counters move with policies.base.RequestCounters, the same rules the
simulator uses, so a policy sees the same numbers in both engines.

A request's order key is (its vLLM priority, when vLLM runs in `priority` mode), then the
policy's key, then (for a request not replayed from a trace) vLLM's own tie-break,
`Request.arrival_time`, then policies.base's tie_key. A request with no traced
arrival arrives at its `Request.arrival_time` on the run's clock. The priority is read
whenever the request is keyed (every step while it runs, and when it joins the waiting
queue); the scheduler lends ranks in its place only inside schedule()."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from live.xargs import RequestTag
from policies.base import Policy, RequestCounters, RequestView, tie_key
from traces.schema import SCORE_PREFIX


@dataclass
class Tracked:
    view: RequestView
    request: Any  # vllm.v1.request.Request (duck-typed: tests pass stand-ins)
    key: tuple | None = None  # its last key (with the tie-breaker)
    synced_step: int = 0  # steps before this one are in view's counters
    cached_known: bool = False  # view.cached_tokens holds vLLM's hit (first scheduled)
    traced: bool = False  # its arrival is the trace's (replay), not vLLM's clock


@dataclass
class RequestTracker:
    """The views of the requests a run's scheduler holds, keyed by vLLM request id.

    Cost per step is kept to the requests that ran, not the whole queue: a waiting
    request's skipped steps are applied in one RequestCounters.on_skipped(view, k) call
    when its view is next read, and its key is reused while the policy guarantees it
    (static keys: while it waits; dynamic keys: until the policy's horizon, or until a
    request joins the waiting set), as the simulator's fast-forward does."""

    entries: dict[str, Tracked] = field(default_factory=dict)
    keys: dict[str, tuple] = field(default_factory=dict)
    running: set[str] = field(default_factory=set)
    step: int = 0  # steps completed in this run
    _stale: set[str] = field(default_factory=set)
    _rekey_all: bool = True
    _joined: bool = False  # a request joined the waiting set since the last full re-key
    _valid_until_step: float = -math.inf
    _valid_until_s: float = -math.inf
    _next_id: int = 0
    # With a predictor in the server: the column its scores go to, which a request's
    # own non-zero priority fills instead (live/inserver.py); else score_priority.
    score_column: str | None = None
    # Called with a dropped request's id (PolicyRun: the policy's forget()).
    on_drop: Callable[[int], None] | None = None
    # vLLM runs in `priority` mode: Request.priority orders before the policy's key.
    priority_first: bool = False

    def add(self, request: Any, tag: RequestTag, now_s: float,
            arrived_s: float | None = None) -> RequestView:
        """Make the view of a request entering the scheduler. Its arrival: the traced
        one (tag), else arrived_s (its Request.arrival_time on the run's clock), else
        now_s."""
        sp = getattr(request, "sampling_params", None)
        output = tag.output_tokens
        if output is None and sp is not None and getattr(sp, "ignore_eos", False):
            output = getattr(sp, "max_tokens", None)  # with ignore_eos it is the true length
        features = dict(tag.features)
        if self.score_column is not None:
            pass  # the scorer fills it (or takes the priority) before the first key
        elif not any(k.startswith(SCORE_PREFIX) for k in features):
            # vLLM's priority field, lower first, as a score (higher = served first),
            # re-read whenever the request is keyed (sync).
            features[PRIORITY_SCORE] = priority_score(request)
        rid = tag.request_id
        if rid is None:
            rid = self._next_id
        self._next_id = max(self._next_id, rid + 1)
        arrival = tag.arrival_s
        if arrival is None:
            arrival = now_s if arrived_s is None else arrived_s
        view = RequestView(
            request_id=rid,
            arrival_s=arrival,
            prompt_tokens=int(request.num_prompt_tokens),
            output_tokens=None if output is None else int(output),
            waiting_since_s=arrival,
            features=features,
        )
        self.entries[request.request_id] = Tracked(
            view, request, synced_step=self.step, traced=tag.arrival_s is not None)
        self._joined_waiting(request.request_id)
        return view

    def adopt(self, entries: Iterable[Tracked]) -> None:
        """Take over requests still in the scheduler from a previous run."""
        for e in entries:
            e.synced_step, e.key = self.step, None
            self.entries[e.request.request_id] = e
            self._joined_waiting(e.request.request_id)

    def _joined_waiting(self, vid: str) -> None:
        self._stale.add(vid)
        self._joined = True

    def sync(self, e: Tracked) -> RequestView:
        """Bring e's view up to now: the steps it sat out, the tokens it has."""
        v = e.view
        skipped = self.step - e.synced_step
        if skipped > 0:
            RequestCounters.on_skipped(v, skipped)
            e.synced_step = self.step
        v.tokens_generated = int(e.request.num_output_tokens)
        if PRIORITY_SCORE in v.features:
            v.features[PRIORITY_SCORE] = priority_score(e.request)  # type: ignore[index]
        return v

    def order_key(self, e: Tracked, policy_key: Any) -> tuple:
        """The request's place: (vLLM priority,) policy key, then the tie-break. A
        replayed request's arrival is the trace's, and ties go as in the simulator
        (tie_key: traced arrival, then request id); any other request's go first by
        vLLM's own tie-break, Request.arrival_time."""
        r = e.request
        if e.traced:
            tie: tuple = (tie_key(e.view),)
        else:
            tie = (float(getattr(r, "arrival_time", 0.0) or 0.0), tie_key(e.view))
        if self.priority_first:
            return (int(getattr(r, "priority", 0) or 0), policy_key, *tie)
        return (policy_key, *tie)

    def note_scheduled(self, vid: str) -> int:
        """At a step that schedules vLLM request vid: latch its prefix-cache hit into its
        view at its first scheduling, and return it (0 at later steps)."""
        e = self.entries.get(vid)
        if e is None or e.cached_known:
            return 0
        cached = cached_tokens_of(e.request)
        if cached is None:
            return 0
        e.cached_known = True
        e.view.cached_tokens = cached
        return cached

    def rank_keys(self, policy: Policy, now_s: float) -> tuple[dict[str, tuple], bool]:
        """Every live request's key (the policy's, then the tie-breaker), and whether
        waiting requests' keys may have changed since the last call (then the waiting
        queue needs a full sort; otherwise only new or re-queued requests move).

        Running requests are re-keyed every step, so a dynamic policy's horizon is taken
        over the waiting ones alone: it bounds when one of their keys can move."""
        per_request = per_request_horizon(policy)
        full = self._rekey_all or (not policy.static_keys and (
            self.step >= self._valid_until_step or now_s >= self._valid_until_s
            or (self._joined and not per_request)))
        todo = self.entries.keys() if full else (self._stale | self.running)
        unscored = set()
        for vid in todo:
            e = self.entries.get(vid)
            if e is None:
                continue
            v = self.sync(e)
            if self.score_column is not None and self.score_column not in v.features:
                unscored.add(vid)  # its score is on the way: no key yet (see live/inserver.py)
                continue
            e.key = self.order_key(e, policy.key(v, now_s))
            self.keys[vid] = e.key
        if not policy.static_keys:
            if full:
                waiting = [e.view for vid, e in self.entries.items()
                           if vid not in self.running and vid not in unscored]
                self._set_horizon(policy.horizon(waiting, [], now_s), now_s, reset=True)
            elif per_request:  # the newcomers' own promotions bound the order too
                for vid in self._stale - self.running - unscored:
                    e = self.entries.get(vid)
                    if e is not None:
                        self._set_horizon(policy.horizon([e.view], [], now_s), now_s)
        self._stale = unscored  # keyed as soon as their scores land
        self._rekey_all = self._joined = False
        return self.keys, full

    def _set_horizon(self, horizon: tuple[float, float], now_s: float,
                     reset: bool = False) -> None:
        steps, seconds = horizon
        until_step, until_s = self.step + max(1, steps), now_s + seconds
        if reset:
            self._valid_until_step, self._valid_until_s = until_step, until_s
        else:
            self._valid_until_step = min(self._valid_until_step, until_step)
            self._valid_until_s = min(self._valid_until_s, until_s)

    def after_step(
        self,
        scheduled: Mapping[str, int],
        preempted: Iterable[str],
        step_start_s: float,
        step_end_s: float,
        running: set[str],
    ) -> int:
        """Move the counters of the requests that ran or were preempted in the step that
        just ended (the others' skipped steps are applied lazily); drop finished ones.
        Returns how many finished."""
        for vid in preempted:
            e = self.entries.get(vid)
            if e is not None:
                self.sync(e)
                RequestCounters.on_preempted(e.view, step_start_s)
                self._joined_waiting(vid)
        duration = step_end_s - step_start_s
        for vid in scheduled:
            e = self.entries.get(vid)
            if e is not None:
                self.sync(e)
                RequestCounters.on_scheduled(e.view, 1, step_end_s, duration)
                e.synced_step = self.step + 1
        self.step += 1
        for vid in self.running - running:
            e = self.entries.get(vid)
            if e is not None:
                e.view.running = False
        for vid in running:
            e = self.entries.get(vid)
            if e is not None:
                e.view.running = True
        self.running = {vid for vid in running if vid in self.entries}
        done = [vid for vid in (self.running | set(scheduled))
                if vid in self.entries and self.entries[vid].request.is_finished()]
        for vid in done:
            self.drop(vid)
        return len(done)

    def drop(self, vid: str) -> None:
        e = self.entries.pop(vid, None)
        if e is not None and self.on_drop is not None:
            self.on_drop(e.view.request_id)
        self.keys.pop(vid, None)
        self.running.discard(vid)
        self._stale.discard(vid)

    def drop_finished(self) -> None:
        """Forget requests that ended outside a step (aborted while waiting)."""
        for vid in [v for v, e in self.entries.items() if e.request.is_finished()]:
            self.drop(vid)

    def forget_keys(self) -> None:
        """Re-key every request at the next step (the policy changed)."""
        self._rekey_all = True


PRIORITY_SCORE = SCORE_PREFIX + "priority"


def priority_score(request: Any) -> float:
    """vLLM's priority (lower first) as a score (higher first)."""
    return -float(getattr(request, "priority", 0) or 0)


def cached_tokens_of(request: Any) -> int | None:
    """vLLM's prefix-cache hit of a request once it has been first scheduled, else None:
    Request.num_cached_tokens (-1 until then) where a release has it; vLLM 0.32 keeps it
    in request.prefill_stats, filled at the first scheduling (num_prompt_tokens > 0 from
    then) and handed on, None, by the step that ends the prefill."""
    n = getattr(request, "num_cached_tokens", None)
    if isinstance(n, int):
        return n if n >= 0 else None
    stats = getattr(request, "prefill_stats", None)
    if stats is not None and getattr(stats, "num_prompt_tokens", 0) > 0:
        return int(stats.num_cached_tokens)
    return None


def per_request_horizon(policy: Policy) -> bool:
    """Whether the policy's horizon over a set of waiting requests is the least of their
    own: starvation prevention around a static-key policy, where each request's key moves
    only at its own promotion. Then a request joining the waiting set bounds the order by
    its own horizon, without re-keying the others."""
    from policies.starvation import StarvationPrevention

    return isinstance(policy, StarvationPrevention) and policy.inner.static_keys

