"""Starvation prevention: promote after `starvation` waited steps for `quantum` runs."""

from __future__ import annotations

import math

import pytest
from policy_engine import order, run, view

from policies import RequestCounters, make_policy


def stream(n_short: int = 60):
    """A 50-token request at t=0 and a 1-token request arriving at every step."""
    return [view(0, 0.0, output=50), *(view(i, float(i - 1), output=1) for i in range(1, n_short))]


@pytest.mark.parametrize("skip", [False, True])
@pytest.mark.parametrize(
    "spec", ["sjf-oracle:starvation=5,quantum=3", "sjf-oracle:max_wait_s=5,quantum=3"]
)
def test_promoted_after_threshold_for_exactly_quantum_runs(spec, skip):
    log = run(make_policy(spec), stream(), skip=skip, max_steps=40)
    long_runs = [step for step, ids in enumerate(log) if 0 in ids]
    # waits steps 0-4, promoted at 5 for exactly 3 runs, demoted at 8; its counter
    # restarts from its last run, so it is promoted again after waiting 8-12
    assert long_runs[:5] == [5, 6, 7, 13, 14]
    # short 11 arrived at 10 and waited 10-14 behind the long one: promoted too, and
    # promoted requests keep the wrapped (SJF) order among themselves
    assert log[15] == {11}


def test_paper_setting_200_10():
    log = run(
        make_policy("sjf-oracle:starvation=200,quantum=10"), stream(700), skip=True, max_steps=650
    )
    long_runs = [step for step, ids in enumerate(log) if 0 in ids]
    assert long_runs == [*range(200, 210), *range(410, 420), *range(620, 630)]


def test_promoted_goes_first_and_promoted_ones_keep_the_inner_order():
    p = make_policy("sjf-oracle:starvation=10,quantum=2")
    views = [
        view(0, 0.0, output=500, steps_waiting=10),
        view(1, 1.0, output=300, steps_waiting=12),
        view(2, 2.0, output=1, steps_waiting=9),
        view(3, 3.0, output=2),
    ]
    assert order(p, views) == [1, 0, 2, 3]
    assert set(p.promoted) == {0, 1}


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
