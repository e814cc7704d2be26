"""Engine invariants over random traces, policies and configs (hypothesis)."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, reject, settings
from hypothesis import strategies as st

from sim.config import EngineConfig
from sim.errors import SimError
from sim.profile import load_profile
from sim.run import simulate

PROFILE = load_profile()
POLICIES = [
    "fcfs",
    "sjf-oracle",
    "srtf-oracle",
    "prompt-length",
    "mlfq",
    "sjf-oracle:starvation=20,quantum=4",
    "fcfs:max_wait_s=0.5",
]


# Shares of 300 derandomized examples (hypothesis' generate phase), before this strategy
# was re-weighted and after: every request rejected 32% -> 3%, at least half completed
# 47% -> 94%, some preemption 14% -> 35%, sessions 0% -> 33%. describe_example's events
# give the shares of a run (pytest --hypothesis-show-statistics).
@st.composite
def scenarios(draw):
    # Hypothesis favours the first of sampled_from's values and small integers: the
    # values that exercise most (many requests, KV pressure) come first.
    n = 8 + draw(st.integers(0, 52)) if draw(st.integers(0, 9)) else draw(st.integers(1, 7))
    seed = draw(st.integers(0, 10_000))
    rng = np.random.default_rng(seed)
    burst = draw(st.booleans())
    arrival = (
        np.zeros(n)
        if burst
        else np.cumsum(rng.exponential(draw(st.sampled_from([0.01, 0.1, 0.01, 0.5])), n))
    )
    df = pd.DataFrame(
        {
            "request_id": np.arange(n),
            "arrival_s": arrival,
            "prompt_tokens": rng.integers(1, draw(st.sampled_from([20, 300, 2000])), n),
            "output_tokens": rng.integers(1, draw(st.sampled_from([100, 600, 100, 600, 5])), n),
        }
    )
    if draw(st.integers(0, 2)) == 0:
        df = with_sessions(df, rng, draw(st.sampled_from([0.0, 0.05, 0.5])))
    block_size = draw(st.sampled_from([4, 16]))
    tokens = (df["prompt_tokens"] + df["output_tokens"]).to_numpy()
    longest, blocks = int(tokens.max()), -(-tokens // block_size)
    # The KV pool: mostly room for the longest request but a fraction of all of them at
    # once (preemption), sometimes all of them, rarely too small for some (rejection).
    share = draw(st.sampled_from([0.1, 0.2, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, "small"]))
    if share == "small":  # the longest fifth of the requests never fit
        num_gpu_blocks = max(1, int(np.quantile(blocks, 0.8)))
    else:
        num_gpu_blocks = max(int(blocks.max()), int(share * blocks.sum()))
    chunked = draw(st.integers(0, 3)) > 0
    budget = draw(st.sampled_from([64, 512, 8192]))
    if not chunked and draw(st.integers(0, 3)) > 0:
        budget = max(budget, longest)  # without chunking a prompt must fit one step
    cfg = dict(
        num_gpu_blocks=num_gpu_blocks,
        block_size=block_size,
        max_num_seqs=draw(st.sampled_from([64, 4, 64, 4, 1])),
        max_num_batched_tokens=budget,
        chunked_prefill=chunked,
        engine_mode=draw(st.sampled_from(["vllm-v1", "ltr-paper"])),
    )
    if cfg["engine_mode"] == "ltr-paper":
        cfg["preemption"] = draw(st.sampled_from(["swap", "recompute"]))
    return df, draw(st.sampled_from(POLICIES)), cfg


def with_sessions(df: pd.DataFrame, rng, think_s: float) -> pd.DataFrame:
    """The same requests as closed-loop sessions of 1-4 turns (session_id, turn, think_s):
    a later turn's prompt is the conversation so far plus a few new tokens, sent (open-loop
    estimate) think_s after the previous turn; rows re-sorted by arrival."""
    rows, turns = df.to_dict("records"), []
    i, session = 0, 0
    while i < len(rows):
        size = int(rng.integers(1, 5))
        prev = None
        for turn, row in enumerate(rows[i : i + size]):
            if prev is not None:
                row["prompt_tokens"] = (
                    prev["prompt_tokens"] + prev["output_tokens"] + int(rng.integers(1, 20))
                )
                row["arrival_s"] = prev["arrival_s"] + think_s
            turns.append(
                {**row, "session_id": session, "turn": turn, "think_s": think_s if turn else 0.0}
            )
            prev = row
        i, session = i + size, session + 1
    out = pd.DataFrame(turns).sort_values("arrival_s", kind="stable")
    return out.reset_index(drop=True)


def describe_example(df: pd.DataFrame, summary: dict) -> None:
    """What an example exercised (pytest --hypothesis-show-statistics lists the shares)."""
    done, n = summary["completed"], summary["requests"]
    event(
        "completed: all"
        if done == n
        else "completed: none"
        if done == 0
        else "completed: at least half"
        if 2 * done >= n
        else "completed: under half"
    )
    event("preempted" if summary["preemptions"] else "not preempted")
    event("sessions" if "session_id" in df.columns else "no sessions")


def run(df, policy, cfg, fast=True):
    return simulate(df, policy, PROFILE, EngineConfig(fast_forward=fast, **cfg))


def run_or_reject(df, policy, cfg, fast=True):
    """A setting that livelocks must be reported as such (test_livelock_is_reported);
    the invariants below are about runs that make progress."""
    try:
        return run(df, policy, cfg, fast)
    except SimError as e:
        assert "no progress" in str(e)
        reject()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_conservation_and_monotone_time(sc):
    df, policy, cfg = sc
    res = run_or_reject(df, policy, cfg)
    describe_example(df, res.summary)
    req, steps = res.requests, res.steps
    # Every request finishes once or is rejected; nothing is left behind.
    assert set(req["status"]) <= {"finished", "rejected"}
    done = req[req["status"] == "finished"]
    assert (done["tokens_generated"] == done["output_tokens"]).all()
    # Prefill work: each prompt once, plus what recompute redoes (generated tokens included).
    if cfg.get("preemption") != "swap" and not (req["preemptions"] > 0).any():
        assert steps["prefill_tokens"].sum() == done["prompt_tokens"].sum()
    # Every token is produced once: by a decode step, or by a completed prefill (each
    # finished request completed one, plus at most one more per preemption).
    tokens, decoded = done["output_tokens"].sum(), steps["decode_requests"].sum()
    assert decoded + len(done) <= tokens <= decoded + len(done) + res.summary["preemptions"]
    # KV blocks never exceed the pool; time never goes back.
    assert (steps["kv_blocks_used"] <= res.summary["num_gpu_blocks"]).all()
    assert (steps["kv_blocks_used"] >= 0).all()
    assert (steps["duration_s"] > 0).all()
    starts = steps["start_s"].to_numpy()
    assert (np.diff(starts) > 0).all()
    assert (done["first_scheduled_s"] >= done["arrival_s"]).all()
    assert (done["first_token_s"] >= done["first_scheduled_s"]).all()
    assert (done["finish_s"] >= done["first_token_s"]).all()
    assert (done["max_waiting_s"] <= done["latency_s"] + 1e-9).all()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_fast_mode_equals_step_by_step_bit_for_bit(sc):
    df, policy, cfg = sc
    fast = run_or_reject(df, policy, cfg, True)
    describe_example(df, fast.summary)
    slow = run(df, policy, cfg, False)
    pd.testing.assert_frame_equal(fast.requests, slow.requests, check_exact=True)
    pd.testing.assert_frame_equal(fast.steps, slow.steps, check_exact=True)


@pytest.mark.parametrize("mode", ["vllm-v1", "ltr-paper"])
def test_same_inputs_same_result(mode):
    rng = np.random.default_rng(5)
    n = 400
    df = pd.DataFrame(
        {
            "request_id": np.arange(n),
            "arrival_s": np.cumsum(rng.exponential(0.05, n)),
            "prompt_tokens": rng.integers(1, 900, n),
            "output_tokens": rng.integers(1, 500, n),
        }
    )
    cfg = dict(num_gpu_blocks=1500, engine_mode=mode)
    a, b = (
        run(df, "sjf-oracle:starvation=50,quantum=5", cfg),
        run(df, "sjf-oracle:starvation=50,quantum=5", cfg),
    )
    pd.testing.assert_frame_equal(a.requests, b.requests, check_exact=True)
    pd.testing.assert_frame_equal(a.steps, b.steps, check_exact=True)
    # Row order of the input does not matter: ties break by arrival, then request id.
    shuffled = df.sample(frac=1.0, random_state=1)
    c = run(shuffled, "sjf-oracle:starvation=50,quantum=5", cfg)
    pd.testing.assert_frame_equal(a.requests, c.requests, check_exact=True)


def test_livelock_is_reported_not_looped_on():
    # One seat, 64-token chunks, recompute preemption and a starvation quantum of 4 steps:
    # each promoted request throws away the previous one's partial prefill.
    rng = np.random.default_rng(13)
    n = 53
    df = pd.DataFrame(
        {
            "request_id": np.arange(n),
            "arrival_s": np.cumsum(rng.exponential(0.1, n)),
            "prompt_tokens": rng.integers(1, 2000, n),
            "output_tokens": rng.integers(1, 600, n),
        }
    )
    cfg = dict(
        num_gpu_blocks=120,
        block_size=16,
        max_num_seqs=1,
        max_num_batched_tokens=64,
        engine_mode="ltr-paper",
        preemption="recompute",
    )
    with pytest.raises(SimError, match="no progress"):
        run(df, "sjf-oracle:starvation=20,quantum=4", cfg)
