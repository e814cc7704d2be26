"""Hand-worked cases and queueing theory the engine must reproduce exactly or statistically."""

import numpy as np
import pandas as pd
import pytest

from sim.config import EngineConfig
from sim.run import simulate
from tests.sim.conftest import fixed_profile, make_trace


def trace(rows):
    return pd.DataFrame(rows, columns=["request_id", "arrival_s", "prompt_tokens", "output_tokens"])


def by_id(res):
    return res.requests.set_index("request_id")


def test_two_requests_batched_together():
    # Step 0 prefills 10+20 tokens: 1 + 0.1*30 = 4 s; then 1 s decode steps.
    prof = fixed_profile(c0_s=1.0, prefill_token_s=0.1)
    res = simulate(
        trace([(0, 0.0, 10, 3), (1, 0.0, 20, 2)]), "fcfs", prof, EngineConfig(num_gpu_blocks=100)
    )
    r = by_id(res)
    assert r.loc[0, "first_token_s"] == pytest.approx(4.0)
    assert r.loc[1, "first_token_s"] == pytest.approx(4.0)
    assert r.loc[1, "finish_s"] == pytest.approx(5.0)
    assert r.loc[0, "finish_s"] == pytest.approx(6.0)
    assert list(res.steps["prefill_tokens"]) == [30, 0, 0]
    assert list(res.steps["decode_requests"]) == [0, 2, 1]


def test_chunked_prefill_splits_at_the_token_budget():
    # Budget 16: step 0 = A's 10 + B's first 6; step 1 = A decode + B's last 14.
    prof = fixed_profile(c0_s=1.0, prefill_token_s=0.1)
    res = simulate(
        trace([(0, 0.0, 10, 3), (1, 0.0, 20, 2)]),
        "fcfs",
        prof,
        EngineConfig(num_gpu_blocks=100, max_num_batched_tokens=16, max_num_seqs=2),
    )
    r = by_id(res)
    assert list(res.steps["prefill_tokens"]) == [16, 14, 0]
    assert r.loc[0, "first_token_s"] == pytest.approx(2.6)
    assert r.loc[1, "first_token_s"] == pytest.approx(5.0)
    assert r.loc[0, "finish_s"] == pytest.approx(6.0)
    assert r.loc[1, "finish_s"] == pytest.approx(6.0)


def test_no_chunking_waits_for_a_whole_prompt():
    prof = fixed_profile(c0_s=1.0)
    res = simulate(
        trace([(0, 0.0, 10, 2), (1, 0.0, 10, 2)]),
        "fcfs",
        prof,
        EngineConfig(
            num_gpu_blocks=100, max_num_batched_tokens=15, max_num_seqs=2, chunked_prefill=False
        ),
    )
    assert list(res.steps["prefill_tokens"]) == [10, 10, 0]


def test_recompute_preemption_by_hand():
    # 4 blocks of 4 tokens. Step 0 prefills A (4 prompt, 8 out) and B (4, 6): 1 + 0.5*8
    # = 5 s, one block each. Step 1 (position 4) takes a second block each: none left.
    # Step 5 (position 8) needs a third for both: FCFS preempts the later arrival, B,
    # which has 5 tokens. A ends after step 7 (t=12); B re-prefills 4 + 5 = 9 tokens
    # in one step (1 + 4.5 s) and that step's token is its 6th and last: t=17.5.
    prof = fixed_profile(c0_s=1.0, prefill_token_s=0.5)
    res = simulate(
        trace([(0, 0.0, 4, 8), (1, 0.0, 4, 6)]),
        "fcfs",
        prof,
        EngineConfig(num_gpu_blocks=4, block_size=4, enable_prefix_caching=False),
    )
    r = by_id(res)
    assert r.loc[0, "finish_s"] == pytest.approx(12.0)
    assert r.loc[1, "finish_s"] == pytest.approx(17.5)
    assert r.loc[1, "preemptions"] == 1 and r.loc[0, "preemptions"] == 0
    assert list(res.steps["prefill_tokens"]) == [8, 0, 0, 0, 0, 0, 0, 0, 9]
    assert res.summary["preemptions"] == 1
    # B waited from its 5th token (t=9) to its 6th (t=17.5).
    assert r.loc[1, "max_token_gap_s"] == pytest.approx(8.5)


def test_recompute_preemption_hits_its_own_blocks_with_prefix_caching():
    # The same case with prefix caching (vLLM V1's default). At step 5 B has computed 8
    # tokens (2 full blocks) and is preempted: its blocks go to the free queue's tail last
    # block first, so A's third block (same step) evicts B's second. When A ends (t=12), B
    # hits its first block (4 tokens) and re-prefills 9 - 4 = 5: 1 + 2.5 s, ending at 15.5.
    res = simulate(
        trace([(0, 0.0, 4, 8), (1, 0.0, 4, 6)]),
        "fcfs",
        fixed_profile(c0_s=1.0, prefill_token_s=0.5),
        EngineConfig(num_gpu_blocks=4, block_size=4),
    )
    r = by_id(res)
    assert r.loc[0, "finish_s"] == pytest.approx(12.0)
    assert r.loc[1, "finish_s"] == pytest.approx(15.5)
    assert list(res.steps["prefill_tokens"]) == [8, 0, 0, 0, 0, 0, 0, 0, 5]
    assert list(res.steps["cached_tokens"]) == [0] * 8 + [4]
    assert list(res.steps["blocks_evicted"]) == [0] * 5 + [1, 0, 0, 0]
    # vLLM's num_cached_tokens is the hit at first scheduling: none for either.
    assert list(r["cached_tokens"]) == [0, 0]


def test_swap_preemption_in_paper_mode_keeps_computed_tokens():
    # Same case in ltr-paper mode: B is swapped out (2 blocks) and back in, no re-prefill.
    prof = fixed_profile(c0_s=1.0, prefill_token_s=0.5, swap_block_s=0.25)
    res = simulate(
        trace([(0, 0.0, 4, 8), (1, 0.0, 4, 6)]),
        "fcfs",
        prof,
        EngineConfig(num_gpu_blocks=4, block_size=4, engine_mode="ltr-paper"),
    )
    r = by_id(res)
    assert res.steps["prefill_tokens"].sum() == 8
    assert res.steps["swapped_blocks"].sum() == 4  # out and in
    assert r.loc[1, "preemptions"] == 1
    assert r.loc[1, "tokens_generated"] == 6


def test_request_that_can_never_fit_is_rejected_not_looped_on():
    prof = fixed_profile(c0_s=1.0)
    res = simulate(
        trace([(0, 0.0, 100, 100), (1, 0.0, 4, 4)]),
        "fcfs",
        prof,
        EngineConfig(num_gpu_blocks=4, block_size=4),
    )
    assert res.summary["rejected"] == 1 and res.summary["completed"] == 1
    assert by_id(res).loc[0, "status"] == "rejected"


def test_stop_after_ends_the_data_generation_run():
    prof = fixed_profile(c0_s=0.01, decode_req_s=0.001)
    df = make_trace(300, 1.0, seed=3)
    df["arrival_s"] = 0.0
    res = simulate(df, "sjf-oracle", prof, EngineConfig(num_gpu_blocks=2000, stop_after=100))
    assert res.summary["completed"] >= 100
    assert res.summary["completed"] < 300
    assert res.summary["stopped_early"]


def _mg1_trace(n, lam, seed):
    rng = np.random.default_rng(seed)
    out = rng.integers(1, 200, n)  # service = output_tokens steps of D seconds
    return pd.DataFrame(
        {
            "request_id": np.arange(n),
            "arrival_s": np.cumsum(rng.exponential(1 / lam, n)),
            "prompt_tokens": np.full(n, 8),
            "output_tokens": out,
        }
    )


MG1 = dict(max_num_seqs=1, max_num_batched_tokens=512, num_gpu_blocks=1000, chunked_prefill=False)


def test_fcfs_single_server_matches_pollaczek_khinchine():
    # One request at a time, every step D seconds: an M/G/1 queue with S = D * output.
    D, lam, n = 0.01, 0.9, 40_000
    df = _mg1_trace(n, lam, seed=11)
    res = simulate(df, "fcfs", fixed_profile(c0_s=D), EngineConfig(**MG1))
    S = D * np.arange(1, 200)
    es, es2 = S.mean(), (S**2).mean()
    rho = lam * es
    wq_theory = lam * es2 / (2 * (1 - rho))
    assert res.summary["completed"] == n
    wait = (res.requests["first_scheduled_s"] - res.requests["arrival_s"]).to_numpy()
    # Batch means for the standard error of a correlated sequence.
    batches = wait[: n // 40 * 40].reshape(40, -1).mean(axis=1)
    se = batches.std(ddof=1) / np.sqrt(len(batches))
    assert 0.8 < rho < 0.95
    assert abs(wait.mean() - wq_theory) < 4 * se, (wait.mean(), wq_theory, se)
    # And the service itself is exactly D * output_tokens.
    service = res.requests["finish_s"] - res.requests["first_scheduled_s"]
    np.testing.assert_allclose(service, D * df["output_tokens"], rtol=1e-9)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sjf_oracle_never_loses_to_fcfs_on_a_single_server(seed):
    df = _mg1_trace(5000, 0.85, seed)
    prof = fixed_profile(c0_s=0.01)
    fcfs = simulate(df, "fcfs", prof, EngineConfig(**MG1)).summary["mean_latency_s"]
    sjf = simulate(df, "sjf-oracle", prof, EngineConfig(**MG1)).summary["mean_latency_s"]
    assert sjf < fcfs
