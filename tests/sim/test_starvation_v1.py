"""Starvation prevention in the default engine (vllm-v1): known answers at the tightest
threshold, where every waiting request is promoted at the first step after it arrives."""

import numpy as np
import pandas as pd
import pytest

from sim.config import EngineConfig
from sim.profile import load_profile
from sim.run import simulate
from tests.sim.conftest import make_trace

PROFILE = load_profile()
# Every request that has waited at all is promoted; none is demoted.
TIGHTEST = "max_wait_s=1e-9,quantum=1000000"


def served(df: pd.DataFrame, policy: str, max_num_seqs: int) -> pd.DataFrame:
    # Ample KV blocks: nothing is preempted, so only the admission order differs.
    cfg = EngineConfig(max_num_seqs=max_num_seqs, num_gpu_blocks=100_000)
    res = simulate(df, policy, PROFILE, cfg)
    assert res.summary["preemptions"] == 0
    return res.requests[["request_id", "ttft_s", "finish_s", "max_waiting_s"]]


@pytest.mark.parametrize(("seed", "max_num_seqs"), [(0, 2), (1, 4), (2, 8)])
def test_tightest_threshold_serves_fcfs_by_age_and_shortest_first_by_the_papers_order(
    seed, max_num_seqs
):
    """Overloaded: a queue builds up behind a few seats. With order=age the promoted queue
    is served oldest first: FCFS's run, request for request. With order=paper it is
    served by the wrapped key: sjf-oracle's run."""
    df = make_trace(150, rate=40.0, seed=seed, prompt=(10, 200), output=(1, 60))
    fcfs = served(df, "fcfs", max_num_seqs)
    sjf = served(df, "sjf-oracle", max_num_seqs)
    assert not np.allclose(fcfs["ttft_s"], sjf["ttft_s"])  # the orders differ here
    age = served(df, f"sjf-oracle:{TIGHTEST},order=age", max_num_seqs)
    paper = served(df, f"sjf-oracle:{TIGHTEST},order=paper", max_num_seqs)
    pd.testing.assert_frame_equal(age, fcfs)
    pd.testing.assert_frame_equal(paper, sjf)
