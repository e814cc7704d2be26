"""Starvation prevention: promote after `starvation` waited steps for `quantum` runs."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from policy_engine import order, run, view

from policies import RequestCounters, make_policy


def stream(n_short: int = 60):
    """A 50-token request at t=0 and a 1-token request arriving at every step."""
    return [view(0, 0.0, output=50), *(view(i, float(i - 1), output=1) for i in range(1, n_short))]


# The long request's runs over the whole of stream(): steps 5-7 (promoted after waiting
# 0-4, quantum 3), then promoted again at 13 after waiting 8-12.
LONG_RUNS = {
    # Demoted after its second quantum at 15, it is passed by every short: each is
    # promoted after its 5 waited steps and is shorter. It runs again when the stream
    # has ended (short 59 arrives at 58 and runs at 63): waits 15-63 under threshold 5.
    "paper": [5, 6, 7, 13, 14, *range(64, 109)],
    # Only requests that began waiting before it (or with it, shorter) go first, so
    # each wait is 5 steps plus the shorts older than it: 5, 7, 10, 13, 16 steps (the
    # backlog grows by its 3 runs each time, as FCFS's would), then 3 when the stream
    # has ended; 18 runs in quanta, the last 32 alone.
    "age": [5, 6, 7, 13, 14, 15, 23, 24, 25, 36, 37, 38, 52, 53, 54, 71, 72, 73, *range(77, 109)],
}


@pytest.mark.parametrize("skip", [False, True])
@pytest.mark.parametrize("order_rule", ["paper", "age"])
@pytest.mark.parametrize("threshold", ["starvation=5", "max_wait_s=5"])
def test_promoted_after_threshold_for_exactly_quantum_runs(threshold, order_rule, skip):
    spec = f"sjf-oracle:{threshold},quantum=3,order={order_rule}"
    log = run(make_policy(spec), stream(), skip=skip, max_steps=200)
    assert len(log) == 109 and all(len(ids) == 1 for ids in log)  # one seat, never idle
    long_runs = [step for step, ids in enumerate(log) if 0 in ids]
    assert long_runs == LONG_RUNS[order_rule]
    # short 11 arrived at 10 and waited 10-14 behind the long one; promoted at 15 too:
    # the paper's order serves it first (shorter), age order the long one (waiting since
    # 8); either way it runs at 16 at the latest
    assert log[15] == ({11} if order_rule == "paper" else {0})
    assert 11 in log[15] | log[16]
    # every short runs exactly once, in arrival order
    shorts = [next(iter(ids)) for ids in log if 0 not in ids]
    assert shorts == list(range(1, 60))


@pytest.mark.parametrize("order_rule", ["paper", "age"])
def test_paper_setting_200_10(order_rule):
    spec = f"sjf-oracle:starvation=200,quantum=10,order={order_rule}"
    log = run(make_policy(spec), stream(700), skip=True, max_steps=650)
    long_runs = [step for step, ids in enumerate(log) if 0 in ids]
    assert long_runs == [*range(200, 210), *range(410, 420), *range(620, 630)]


@pytest.mark.parametrize(
    ("order_rule", "expected"), [("paper", [1, 0, 2, 3]), ("age", [0, 1, 2, 3])]
)
def test_promoted_go_first_in_the_inner_order_or_by_age(order_rule, expected):
    p = make_policy(f"sjf-oracle:starvation=10,quantum=2,order={order_rule}")
    views = [
        view(0, 0.0, output=500, steps_waiting=10),
        view(1, 1.0, output=300, steps_waiting=12, waiting_since_s=0.5),  # ran, then waited
        view(2, 2.0, output=1, steps_waiting=9),
        view(3, 3.0, output=2),
    ]
    assert order(p, views) == expected
    assert set(p.promoted) == {0, 1}


def test_age_is_when_the_wait_began_and_a_repromotion_keeps_it():
    p = make_policy("fcfs:starvation=3,quantum=2")
    old = view(1, 5.0, steps_waiting=3, waiting_since_s=5.0)
    preempted = view(0, 0.0, steps_waiting=3, steps_run=1, waiting_since_s=6.0)
    assert order(p, [preempted, old], 9.0) == [1, 0]  # FCFS would put 0 first
    RequestCounters.on_skipped(old, 3)  # waits 3 more steps: promoted afresh, same age
    assert p.key(old, 12.0) == (0, 5.0, 5.0) and p.promoted[1].at_s == 12.0


def test_promotion_state_and_demotion_by_request_id():
    p = make_policy("fcfs:starvation=4,quantum=2")
    late = view(9, 5.0, steps_waiting=4)
    early = view(1, 0.0, running=True)
    assert order(p, [early, late], 5.0) == [9, 1]
    # waiting is counted from the promotion until it runs: no re-promotion yet
    RequestCounters.on_skipped(late, 3)
    assert p.steps_waited(late) == 3
    assert order(p, [early, late], 6.0) == [9, 1]
    RequestCounters.on_scheduled(late, 1, 7.0, 1.0)
    assert order(p, [early, late], 7.0) == [9, 1]  # one run of two
    RequestCounters.on_scheduled(late, 1, 8.0, 1.0)
    assert order(p, [early, late], 8.0) == [1, 9]  # demoted after two runs
    assert 9 not in p.promoted


def test_promoted_request_that_waits_again_is_promoted_afresh():
    p = make_policy("fcfs:starvation=4,quantum=3")
    r = view(5, 1.0, steps_waiting=4)
    p.key(r, 0.0)
    RequestCounters.on_scheduled(r, 2, 3.0, 2.0)  # 2 of its 3 runs
    RequestCounters.on_preempted(r, 3.0)
    RequestCounters.on_skipped(r, 4)
    p.key(r, 4.0)
    assert p.promoted[5].steps_run == 2  # a fresh quantum from here
    RequestCounters.on_scheduled(r, 2, 6.0, 2.0)
    assert p.key(r, 6.0)[0] == 0


def test_horizon_steps_and_seconds():
    p = make_policy("fcfs:starvation=10,quantum=4,max_wait_s=3")
    waiting = [
        view(0, 0.0, steps_waiting=7, waiting_since_s=0.5),
        view(1, 0.0, steps_waiting=2, waiting_since_s=1.0),
    ]
    running = [view(2, 0.0, running=True, waiting_since_s=2.0)]
    for r in waiting + running:
        p.key(r, 2.0)
    assert p.horizon(waiting, running, 2.0) == (3, 1.5)
    promoted = view(3, 0.0, steps_waiting=10)
    p.key(promoted, 2.0)
    RequestCounters.on_scheduled(promoted, 1, 2.5, 0.5)
    assert p.horizon([], [promoted], 2.5) == (3, math.inf)
    assert p.horizon([], [], 2.5) == (math.inf, math.inf)


def test_horizon_passes_the_inner_horizon_through():
    p = make_policy("mlfq:quantum_s=1,growth=2,prefill_s_per_token=0,starvation=100")
    assert p.horizon([], [view(0, service_s=0.25, running=True)], 0.0) == (math.inf, 0.75)


# ---------------------------------------------------------------- vLLM V1 admission
def first_runs(log: list[frozenset[int]]) -> dict[int, int]:
    first: dict[int, int] = {}
    for step, ids in enumerate(log):
        for rid in ids:
            first.setdefault(rid, step)
    return first


def overload(n: int = 40):
    """A 10-step request at t=0, a 3-step one at t=1, then a 2-step one every step from
    t=2: twice what one seat serves."""
    return [
        view(0, 0.0, output=10),
        view(1, 1.0, output=3),
        *(view(i, float(i), output=2) for i in range(2, n)),
    ]


@pytest.mark.parametrize("skip", [False, True])
def test_in_v1_admission_the_papers_order_starves_and_age_order_does_not(skip):
    # One seat, vLLM V1's admission: a request keeps its seat until it finishes. Request 0
    # holds the seat for steps 0-9; request 1 waits from 1 and is promoted at 5, the
    # short ones arrived at 2-5 at 6-9. The seat frees at 10. By age request 1 is the
    # oldest promoted one: it runs at 10. By the paper's order each short one promoted
    # is shorter, and one is promoted every step while one is served every 2 steps, so
    # request 1 runs only after all 38 short ones: at 10 + 76 = 86.
    def first_run_of_1(order_rule):
        p = make_policy(f"sjf-oracle:starvation=4,quantum=2,order={order_rule}")
        log = run(p, overload(), skip=skip, max_steps=200, seats_only=True)
        return first_runs(log)[1]

    assert first_run_of_1("age") == 10
    assert first_run_of_1("paper") == 86


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    arrivals=st.lists(st.integers(0, 15), min_size=2, max_size=20),
    seed=st.integers(0, 2**16),
    max_len=st.integers(1, 6),
    seats=st.integers(1, 3),
    threshold=st.integers(1, 6),
    rule=st.sampled_from(["starvation", "max_wait_s"]),
    skip=st.booleans(),
)
def test_age_order_bounds_the_wait_after_promotion_in_v1_admission(
    arrivals, seed, max_len, seats, threshold, rule, skip
):
    """Promoted at step P = arrival + threshold, a request waits only for requests that
    arrived no later and had not started by P (`ahead`): each freed seat goes to one of
    them or to it, and every seat frees within max_len steps, so it starts by
    P + ceil((ahead + 1) / seats) * max_len."""
    rng = random.Random(seed)
    views = [
        view(i, float(a), output=rng.randint(1, max_len)) for i, a in enumerate(sorted(arrivals))
    ]
    spec = f"sjf-oracle:{rule}={threshold},quantum=2"
    log = run(make_policy(spec), views, batch=seats, skip=skip, seats_only=True)
    first = first_runs(log)
    assert len(first) == len(views)
    for r in views:
        promoted_at = int(r.arrival_s) + threshold
        ahead = sum(
            1
            for b in views
            if b is not r and b.arrival_s <= r.arrival_s and first[b.request_id] >= promoted_at
        )
        bound = promoted_at + math.ceil((ahead + 1) / seats) * max_len
        assert first[r.request_id] <= bound, (r.request_id, first[r.request_id], bound)
