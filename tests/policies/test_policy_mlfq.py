"""mlfq: levels by attained service, skip-join by prompt length, FCFS within a level."""

from __future__ import annotations

import math

import pytest
from policy_engine import order, run, view

from policies import make_policy


def test_paper_defaults():
    p = make_policy("mlfq")
    assert (p.quantum_s, p.growth) == (0.03, 10.0)
    assert [p.quantum(k) for k in range(3)] == pytest.approx([0.03, 0.3, 3.0])


def test_demotes_after_a_quantum_of_service():
    p = make_policy("mlfq:prefill_s_per_token=0")
    levels = {
        s: p.level_and_left(view(0, service_s=s))[0]
        for s in (0.0, 0.03, 0.0301, 0.33, 0.3301, 3.33, 3.3301)
    }
    assert levels == {0.0: 0, 0.03: 0, 0.0301: 1, 0.33: 1, 0.3301: 2, 3.33: 2, 3.3301: 3}
    old = view(0, 0.0, service_s=0.05, running=True)
    new = view(1, 1.0)
    assert order(p, [old, new]) == [1, 0]
    assert order(p, [view(0, 0.0, service_s=0.02), new]) == [0, 1]  # same level: FCFS


def test_skip_join_by_estimated_prefill_time():
    p = make_policy("mlfq")  # 1e-4 s per prompt token
    assert p.join_level(view(0, prompt=300)) == 0  # 0.03 s fits level 0 exactly
    assert p.join_level(view(0, prompt=301)) == 1
    assert p.join_level(view(0, prompt=3000)) == 1
    assert p.join_level(view(0, prompt=3001)) == 2
    # a long prompt starts lower and demotes by its own level's quantum
    assert p.level_and_left(view(0, prompt=1000, service_s=0.3))[0] == 1
    assert p.level_and_left(view(0, prompt=1000, service_s=0.31))[0] == 2
    assert order(p, [view(0, 0.0, prompt=5000), view(1, 1.0, prompt=10)]) == [1, 0]


def test_levels_cap_and_horizon():
    p = make_policy("mlfq:quantum_s=1,growth=2,prefill_s_per_token=0,levels=2")
    a = view(0, service_s=0.25, running=True)
    b = view(1, service_s=2.5, running=True)  # past levels 0 and 1: stays in the last
    assert p.level_and_left(b) == (1, math.inf)
    assert p.horizon([view(2)], [a, b], 0.0) == (math.inf, 0.75)
    assert p.horizon([view(2)], [b], 0.0) == (math.inf, math.inf)


def test_a_long_job_sinks_below_later_short_ones():
    p = make_policy("mlfq:quantum_s=1,growth=2,prefill_s_per_token=0")
    long = view(0, 0.0, output=20)
    short = view(1, 2.0, output=2)
    log = run(p, [long, short], dt=0.5)
    # long runs 0..1.5 (level 0 ends after 1 s of service, i.e. at 2 steps + 1), short
    # arrives at 2.0 in level 0 and goes first, then long resumes
    assert [sorted(s)[0] for s in log[:7]] == [0, 0, 0, 0, 1, 1, 0]
