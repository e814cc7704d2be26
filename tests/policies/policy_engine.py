"""A toy engine for policy tests: `batch` requests run per step, every present request
sorted together each step (the paper's variant), one token per step, steps of dt seconds.
With seats_only=True it admits as vLLM V1 does: a running request keeps its seat until it
finishes, and only the seats that free go to waiting requests, in the policy's order.

With skip=True it runs like the simulator: it re-keys only at decision points (an
arrival, a completion, the policy's horizon) and moves the counters of many steps at
once with RequestCounters, so comparing skip=False and skip=True tests horizon().
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from policies import Policy, RequestCounters, RequestView, tie_key


def view(rid: int, arrival_s: float = 0.0, prompt: int = 10, output: int = 10, **kw) -> RequestView:
    kw.setdefault("waiting_since_s", arrival_s)
    return RequestView(rid, arrival_s, prompt, output, **kw)


def order(policy: Policy, views: Sequence[RequestView], now_s: float = 0.0) -> list[int]:
    """Request ids in serving order: by (key, tie_key)."""
    return [r.request_id for r in sorted(views, key=lambda r: (policy.key(r, now_s), tie_key(r)))]


def run(
    policy: Policy,
    views: Sequence[RequestView],
    batch: int = 1,
    dt: float = 1.0,
    skip: bool = False,
    max_steps: int = 10_000,
    seats_only: bool = False,
) -> list[frozenset[int]]:
    """The set of request ids run in each step, until all finish or max_steps."""
    policy.prepare(views)
    log: list[frozenset[int]] = []
    done: set[int] = set()
    step = 0
    while len(done) < len(views) and step < max_steps:
        now = step * dt
        present = [r for r in views if r.arrival_s <= now and r.request_id not in done]
        later = [r.arrival_s for r in views if r.arrival_s > now]
        if not present:
            nxt = math.ceil(min(later) / dt)
            log.extend([frozenset()] * (nxt - step))
            step = nxt
            continue
        ranked = sorted(present, key=lambda r: (policy.key(r, now), tie_key(r)))
        if seats_only:
            seated = [r for r in ranked if r.running]
            queue = [r for r in ranked if not r.running]
            free = batch - len(seated)
            chosen, rest = seated + queue[:free], queue[free:]
        else:
            chosen, rest = ranked[:batch], ranked[batch:]
        n = 1
        if skip:
            steps, seconds = policy.horizon(rest, chosen, now)
            n = min(steps, math.ceil(seconds / dt) if seconds < math.inf else math.inf)
            n = max(1, n)
            n = min(n, *(r.output_tokens - r.tokens_generated for r in chosen), max_steps - step)
            if later:
                n = min(n, math.ceil(min(later) / dt) - step)
        for r in rest:
            if r.running:
                RequestCounters.on_preempted(r, now)
            RequestCounters.on_skipped(r, n)
        for r in chosen:
            RequestCounters.on_scheduled(r, n, (step + n) * dt, n * dt)
            r.tokens_generated += n
            if r.tokens_generated == r.output_tokens:
                done.add(r.request_id)
                r.running = False
        log.extend([frozenset(r.request_id for r in chosen)] * n)
        step += n
    return log
