"""approx-oracle: true lengths with noise calibrated to a Kendall's tau."""

from __future__ import annotations

import numpy as np
import pytest
from policy_engine import order, view
from scipy.stats import kendalltau

from policies import PolicyError, make_policy


@pytest.fixture(scope="module")
def trace():
    rng = np.random.default_rng(7)
    lengths = np.maximum(1, rng.lognormal(5.0, 1.2, size=3000).astype(int))
    return [view(i, i * 0.01, output=int(n)) for i, n in enumerate(lengths)]


@pytest.mark.parametrize("tau", [0.9, 0.64, 0.5, 0.2, -0.4])
def test_reaches_target_tau_within_001(trace, tau):
    p = make_policy(f"approx-oracle:tau={tau},seed=1")
    p.prepare(trace)
    keys = [p.key(r, 0.0) for r in trace]
    measured = kendalltau(keys, [r.output_tokens for r in trace]).statistic
    assert abs(measured - tau) <= 0.01
    assert p.achieved_tau == pytest.approx(measured)


def test_tau_one_is_the_true_order(trace):
    p = make_policy("approx-oracle:tau=1")
    p.prepare(trace)
    assert p.sigma == 0.0
    sample = trace[:200]
    assert order(p, sample) == order(make_policy("sjf-oracle"), sample)


def test_deterministic_given_seed(trace):
    a, b, c = (make_policy(f"approx-oracle:tau=0.5,seed={s}") for s in (3, 3, 4))
    for p in (a, b, c):
        p.prepare(trace)
    keys = [[p.key(r, 0.0) for r in trace[:50]] for p in (a, b, c)]
    assert keys[0] == keys[1] != keys[2]


def test_key_before_prepare_is_an_error():
    with pytest.raises(PolicyError, match="needs prepare"):
        make_policy("approx-oracle:tau=0.5").key(view(0), 0.0)


def test_degenerate_traces():
    p = make_policy("approx-oracle:tau=0.5")
    p.prepare([view(0, output=5), view(1, output=5)])  # all lengths tie: tau undefined
    assert p.sigma == 0.0 and np.isnan(p.achieved_tau)
    p.prepare([view(0, output=5)])
    assert order(p, [view(0, output=5)]) == [0]
