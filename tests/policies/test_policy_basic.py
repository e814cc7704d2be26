"""fcfs, sjf-oracle, srtf-oracle, prompt-length: the orders that define them."""

from __future__ import annotations

import math

import pytest
from policy_engine import order, run, view

from policies import PolicyError, make_policy
from policies.base import RequestView


def test_fcfs_is_arrival_order_with_request_id_ties():
    views = [view(3, 2.0), view(1, 0.5), view(2, 0.5), view(0, 1.0)]
    assert order(make_policy("fcfs"), views) == [1, 2, 0, 3]


def test_sjf_oracle_shortest_true_length_first():
    views = [view(0, 0.0, output=50), view(1, 1.0, output=5), view(2, 2.0, output=5)]
    assert order(make_policy("sjf-oracle"), views) == [1, 2, 0]


def test_sjf_oracle_ignores_progress_srtf_does_not():
    long_nearly_done = view(0, 0.0, output=100, tokens_generated=97, running=True)
    short = view(1, 1.0, output=5)
    assert order(make_policy("sjf-oracle"), [long_nearly_done, short]) == [1, 0]
    assert order(make_policy("srtf-oracle"), [long_nearly_done, short]) == [0, 1]


def test_srtf_static_keys_and_infinite_horizon():
    p = make_policy("srtf-oracle")
    assert p.static_keys is True
    running = [view(0, output=100, tokens_generated=10, running=True)]
    assert p.horizon([view(1, output=3)], running, 0.0) == (math.inf, math.inf)


@pytest.mark.parametrize("spec", ["sjf-oracle", "srtf-oracle", "approx-oracle:tau=0.5"])
def test_oracles_need_true_lengths(spec):
    blind = RequestView(request_id=7, arrival_s=0.0, prompt_tokens=3, output_tokens=None)
    with pytest.raises(PolicyError, match="true output lengths; request 7"):
        make_policy(spec).prepare([blind])


def test_sjf_without_starvation_prevention_starves_a_long_request():
    # A long request at t=0 and a one-token request arriving every step: under SJF with
    # one request per step, the long one never runs.
    long = view(0, 0.0, output=50)
    shorts = [view(i, float(i - 1), output=1) for i in range(1, 301)]
    log = run(make_policy("sjf-oracle"), [long, *shorts], max_steps=300)
    assert all(0 not in step for step in log)
    assert long.steps_waiting == 300


def test_prompt_length_shortest_prompt_first():
    views = [view(0, prompt=900), view(1, 1.0, prompt=20), view(2, 2.0, prompt=20)]
    assert order(make_policy("prompt-length"), views) == [1, 2, 0]
