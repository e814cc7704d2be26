"""Arrival processes match the rate and variability asked for, within sampling error."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from traces.arrivals import ArrivalProcess, arrival_times

N = 200_000
SIGMAS = 5


def gaps_of(process: ArrivalProcess, seed: int = 0, n: int = N) -> np.ndarray:
    t = arrival_times(process, n, np.random.default_rng(seed))
    assert np.all(np.diff(t) >= 0) and t[0] >= 0
    return np.diff(np.concatenate([[0.0], t]))


def assert_rate_and_cv(gaps: np.ndarray, rate: float, cv: float) -> None:
    """Sample mean gap and cv within SIGMAS standard errors of the gamma process's values."""
    n = len(gaps)
    mean, sd = gaps.mean(), gaps.std()
    assert abs(mean - 1 / rate) <= SIGMAS * (cv / rate) / math.sqrt(n)
    # delta method for a gamma of shape k: var(s^2)/sigma^4 ~= (2 + 6/k)/n
    k = 1 / cv**2
    rel_se_cv = 0.5 * math.sqrt((2 + 6 / k) / n) + cv / math.sqrt(n)
    assert abs(sd / mean - cv) <= SIGMAS * rel_se_cv * cv


@pytest.mark.parametrize("rate", [0.5, 4.0, 64.0])
def test_poisson_has_the_asked_rate_and_cv_one(rate):
    assert_rate_and_cv(gaps_of(ArrivalProcess("poisson", rate=rate)), rate, 1.0)


@pytest.mark.parametrize("cv", [0.25, 1.0, 2.0, 3.0])
def test_gamma_has_the_asked_rate_and_cv(cv):
    process = ArrivalProcess("gamma", rate=8.0, cv=cv)
    assert_rate_and_cv(gaps_of(process, seed=1), 8.0, cv)
    assert process.meta() == {"process": "gamma", "rate": 8.0, "cv": cv, "shape": 1 / cv**2}


@settings(max_examples=25, deadline=None, derandomize=True)
@given(st.floats(0.01, 1000), st.floats(0.2, 4), st.integers(0, 2**32 - 1))
def test_any_rate_and_cv_within_five_sigma(rate, cv, seed):
    assert_rate_and_cv(gaps_of(ArrivalProcess("gamma", rate=rate, cv=cv), seed, 20_000), rate, cv)


def test_burst_is_all_at_zero():
    assert not arrival_times(ArrivalProcess("burst"), 5, np.random.default_rng(0)).any()


def test_timestamps_start_at_zero_and_scale():
    ts = np.array([100.0, 101.0, 103.0])
    got = arrival_times(ArrivalProcess("timestamps", time_scale=0.5), 3, None, ts)
    np.testing.assert_allclose(got, [0.0, 0.5, 1.5])


def test_same_seed_same_times():
    p = ArrivalProcess("gamma", rate=2.0, cv=2.0)
    a = arrival_times(p, 100, np.random.default_rng(7))
    b = arrival_times(p, 100, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
