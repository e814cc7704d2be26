"""Automatic prefix caching: known answers, the block pool by hand, and properties."""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from policies.base import RequestView
from sim.config import EngineConfig
from sim.errors import SimError
from sim.kv_cache import KVCacheManager
from sim.prefix_keys import KeyTable, _flatten, block_keys, chain_numbers
from sim.request import SimRequest
from sim.run import simulate
from tests.sim.conftest import fixed_profile

PROF = fixed_profile(c0_s=1.0, prefill_token_s=0.5)


def trace(rows, hash_ids, **cols):
    """rows: (arrival_s, prompt_tokens, output_tokens); hash_ids: one list per row."""
    df = pd.DataFrame(rows, columns=["arrival_s", "prompt_tokens", "output_tokens"])
    df.insert(0, "request_id", np.arange(len(df)))
    df["hash_ids"] = hash_ids
    for k, v in cols.items():
        df[k] = v
    return df


def run(df, block=4, blocks=100, **cfg):
    config = EngineConfig(num_gpu_blocks=blocks, block_size=block, **cfg)
    return simulate(df, "fcfs", PROF, config, hash_block_tokens=block)


def test_identical_prompt_prefills_its_partial_last_block_only():
    # 10 tokens = 2 full blocks of 4 + 2. The second request, after the first ended, hits
    # both full blocks (8 tokens) and prefills 2: 1 + 0.5 * 2 = 2 s.
    res = run(trace([(0, 10, 1), (100, 10, 1)], [[7, 8, 9], [7, 8, 9]]))
    assert list(res.requests["cached_tokens"]) == [0, 8]
    assert list(res.steps["prefill_tokens"]) == [10, 2]
    assert res.requests.loc[1, "latency_s"] == pytest.approx(2.0)
    assert res.summary["prefix_hit_rate"] == pytest.approx(8 / 20)


def test_a_freed_partial_block_is_reused_first_and_full_ones_evicted_oldest_first():
    # vLLM 0.32's free queue (block_pool.free_blocks), worked by hand on 8 blocks of 4:
    # 0 (12+2 tokens: blocks a0 a1 a2 and a partial one) ends; its partial block goes to
    # the head, a2 a1 a0 to the tail. 1 (same shape, b0 b1 b2) takes the partial block and
    # 3 unused ones; its partial goes to the head. 2 (8+2 tokens: 3 blocks) takes that
    # partial block, the last unused one, then evicts the oldest cached block, a2. So 3,
    # repeating 0's prompt, finds a0 a1 only: 8 tokens. Freeing the partial blocks to the
    # tail instead would let 2 evict a2 a1 a0 and 3 find nothing.
    rows = [(0, 12, 2), (100, 12, 2), (200, 8, 2), (300, 16, 1)]
    ids = [[1, 2, 3], [4, 5, 6], [7, 8], [1, 2, 3, 9]]
    res = run(trace(rows, ids), blocks=8)
    assert list(res.requests["cached_tokens"]) == [0, 0, 0, 8]
    assert res.summary["prefix_blocks_evicted"] == 1


def test_a_full_hit_still_computes_the_last_block():
    # 8 tokens = 2 full blocks: vLLM computes at least the last token, and hits are whole
    # blocks, so the second request hits 1 block and prefills 4 tokens.
    res = run(trace([(0, 8, 1), (100, 8, 1)], [[7, 8], [7, 8]]))
    assert list(res.requests["cached_tokens"]) == [0, 4]
    assert list(res.steps["prefill_tokens"]) == [8, 4]


def test_same_block_after_a_different_prefix_is_not_a_hit():
    res = run(trace([(0, 9, 1), (100, 9, 1)], [[1, 2, 3], [5, 2, 3]]))
    assert list(res.requests["cached_tokens"]) == [0, 0]


def test_same_step_admissions_hit_blocks_cached_in_that_step():
    # Both arrive at t=0: the first's full blocks are cached when it is scheduled, so
    # the second, admitted in the same step, hits them (as vLLM's allocate_slots does).
    res = run(trace([(0, 12, 1), (0, 12, 1)], [[1, 2, 3], [1, 2, 3]]))
    assert list(res.requests["cached_tokens"]) == [0, 8]
    assert list(res.steps["prefill_tokens"]) == [12 + 4]


def test_hit_rate_of_a_hand_worked_shared_prefix_trace():
    # 2 system prompts of 8 tokens (2 blocks) x 2 questions of 4 tokens, one at a time:
    # each group's second request hits its system prompt: 16 of 48 prompt tokens.
    ids = [[10, 11, 100], [20, 21, 200], [10, 11, 101], [20, 21, 201]]
    res = run(trace([(100 * i, 12, 1) for i in range(4)], ids))
    assert list(res.requests["cached_tokens"]) == [0, 0, 8, 8]
    assert res.summary["prefix_hit_rate"] == pytest.approx(16 / 48)
    off = run(trace([(100 * i, 12, 1) for i in range(4)], ids), enable_prefix_caching=False)
    assert off.summary["prefix_hit_rate"] == 0 and not off.summary["prefix_caching"]


def test_paper_mode_has_prefix_caching_off_by_default():
    df = trace([(0, 10, 1), (100, 10, 1)], [[7, 8, 9], [7, 8, 9]])
    assert list(run(df, engine_mode="ltr-paper").requests["cached_tokens"]) == [0, 0]
    on = run(df, engine_mode="ltr-paper", enable_prefix_caching=True)
    assert list(on.requests["cached_tokens"]) == [0, 8]


def test_coarser_hash_blocks_map_onto_engine_blocks():
    # Ids per 8 tokens, engine blocks of 4: prompts agreeing on their first 8 tokens share
    # the engine's first 2 blocks; the third engine block lies in differing ids.
    keys = block_keys([[1, 2], [1, 3]], np.array([16, 16]), 8, 4)
    a = keys.keys[keys.start[0] : keys.start[0] + 4]
    b = keys.keys[keys.start[1] : keys.start[1] + 4]
    assert list(a[:2] == b[:2]) == [True, True] and not (a[2:] == b[2:]).any()


def test_a_request_larger_than_the_pool_is_rejected():
    res = run(trace([(0, 30, 10), (1, 4, 1)], [list(range(8)), [1]]), blocks=8)
    assert list(res.requests["status"]) == ["rejected", "finished"]


# ----------------------------------------------------------------- the pool by hand
def _req(idx, prompt, output=1):
    return SimRequest(
        idx, RequestView(request_id=idx, arrival_s=0.0, prompt_tokens=prompt, output_tokens=output)
    )


def test_lru_eviction_order_by_hand():
    # A and B each cache 2 blocks (keys a0 a1, b0 b1); A is freed first, then B. The
    # free queue is then a1 a0 b1 b0 (each request's last block first), so taking 3
    # blocks evicts a1, a0, b1 and leaves only B's first block hit-able.
    # (C and D repeat B's and A's prompts, so those blocks are worth caching.)
    keys = KeyTable(
        np.array([1, 2, 3, 4, 3, 4, 1, 2], np.int64), np.array([0, 2, 4, 6]), np.array([2, 2, 2, 2])
    )
    kv = KVCacheManager(4, 4, True, keys, np.full(4, -1), np.array([9, 9, 9, 9]))
    a, b, c, d = _req(0, 8), _req(1, 8), _req(2, 9), _req(3, 9)
    for r in (a, b):
        kv.allocate(r, 2, 8)
        r.num_computed = 8
    assert kv.free == 0
    kv.release(a)
    kv.release(b)
    kv.check()
    assert kv.free == 4 and kv.lookup(c) == (2, 2) and kv.lookup(d) == (2, 2)
    kv.take(1)
    assert kv.lookup(d) == (1, 1) and kv.lookup(c) == (2, 2)  # a1 went first
    kv.take(2)
    assert kv.evicted == 3 and kv.lookup(c) == (1, 1) and kv.lookup(d) == (0, 0)
    kv.check()


def test_reference_counts_and_free_blocks_come_back():
    keys = KeyTable(np.array([1, 2, 1, 2], np.int64), np.array([0, 2]), np.array([2, 2]))
    kv = KVCacheManager(6, 4, True, keys, np.full(2, -1), np.array([9, 9]))
    a, b = _req(0, 9), _req(1, 9)
    kv.allocate(a, 3, 9)
    a.num_computed = 9
    assert kv.lookup(b) == (2, 0)  # held by A: a hit that takes no free block
    kv.admit_hit(b, 2)
    kv.allocate(b, 1, 9)
    assert kv.free == 2 and kv.freed_on_release(a, 3) == 1
    kv.release(a)
    assert kv.free == 3  # A's shared blocks stay with B
    kv.release(b)
    kv.check()
    assert kv.free == 6 and all(e[0] == 0 for e in kv._cache.values())


# ----------------------------------------------------------------------- sessions
def test_a_session_turn_arrives_after_think_time_and_hits_the_conversation():
    # Turn 0: 8 prompt tokens, 5 out; at its end 8 + 5 - 1 = 12 tokens are computed, 3
    # full blocks: its prompt's 2 and one more that turn 1's prompt repeats. Turn 1 (16
    # tokens = turn 0's 13 + 3 new) is sent 2 s after turn 0's answer; it hits 3 blocks,
    # (16 - 1) // 4 = 3 at most, and prefills 4 tokens.
    df = trace(
        [(0, 8, 5), (0.5, 16, 1)],
        [[1, 2], [1, 2, 3, 4]],
        session_id=[7, 7],
        turn=[0, 1],
        think_s=[0.0, 2.0],
    )
    res = run(df)
    r = res.requests
    assert r.loc[1, "arrival_s"] == pytest.approx(r.loc[0, "finish_s"] + 2.0)
    assert list(r["cached_tokens"]) == [0, 12]
    assert list(res.steps["prefill_tokens"])[-1] == 4
    # Without the cache it prefills the whole conversation.
    off = run(df, enable_prefix_caching=False)
    assert list(off.steps["prefill_tokens"])[-1] == 16


# --------------------------------------------------------------------- properties
@st.composite
def shared_prefix_traces(draw):
    n = draw(st.integers(1, 40))
    seed = draw(st.integers(0, 10_000))
    rng = np.random.default_rng(seed)
    block = draw(st.sampled_from([4, 16]))
    groups = draw(st.integers(1, 4))
    rows, ids = [], []
    t = 0.0
    for _ in range(n):
        g = int(rng.integers(groups))
        shared = int(rng.integers(0, 6))
        own = int(rng.integers(1, 6))
        prompt = (shared + own) * block - int(rng.integers(0, block))
        h = [1000 * g + j for j in range(shared)] + [int(x) for x in rng.integers(0, 3, own)]
        t += float(rng.exponential(draw(st.sampled_from([0.01, 0.5]))))
        rows.append((t, prompt, int(rng.integers(1, 40))))
        ids.append(h)
    cfg = dict(
        num_gpu_blocks=draw(st.sampled_from([12, 40, 400])),
        max_num_seqs=draw(st.sampled_from([2, 16])),
        max_num_batched_tokens=draw(st.sampled_from([32, 512])),
        engine_mode=draw(st.sampled_from(["vllm-v1", "ltr-paper"])),
        enable_prefix_caching=True,
    )
    if cfg["engine_mode"] == "ltr-paper":
        cfg["preemption"] = draw(st.sampled_from(["swap", "recompute"]))
    policy = draw(
        st.sampled_from(["fcfs", "sjf-oracle", "uncached-prefill", "fcfs:starvation=10,quantum=3"])
    )
    return trace(rows, ids), block, cfg, policy


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shared_prefix_traces())
def test_prefix_caching_fast_equals_step_by_step_and_conserves(sc):
    df, block, cfg, policy = sc
    cfg = dict(block_size=block, **cfg)
    runs = []
    for fast in (True, False):
        try:
            res = simulate(
                df, policy, PROF, EngineConfig(fast_forward=fast, **cfg), hash_block_tokens=block
            )
        except SimError as e:  # a setting that livelocks is refused, in both modes alike
            assert "no progress" in str(e)
            reject()
        runs.append(res)
        kv = res.engine.kv
        kv.check()
        assert kv.free == kv.num_gpu_blocks  # every block back
        assert all(e[0] == 0 for e in kv._cache.values())  # no holder left
        steps = res.steps
        assert (steps["kv_blocks_used"] <= cfg["num_gpu_blocks"]).all()
        done = res.requests[res.requests["status"] == "finished"]
        assert (done["tokens_generated"] == done["output_tokens"]).all()
        assert (res.requests["cached_tokens"] <= res.requests["prompt_tokens"] - 1).all()
        # Every prompt token of a finished request was computed or hit at least once.
        assert steps["prefill_tokens"].sum() + steps["cached_tokens"].sum() >= (
            done["prompt_tokens"].sum()
        )
    pd.testing.assert_frame_equal(runs[0].requests, runs[1].requests, check_exact=True)
    pd.testing.assert_frame_equal(runs[0].steps, runs[1].steps, check_exact=True)


def test_same_results_in_other_processes():
    """Same trace and config, other interpreters with other hash seeds: same bytes."""
    code = (
        "import hashlib,sys,numpy as np,pandas as pd\n"
        "from tests.sim.test_prefix_cache import trace, run\n"
        "rng=np.random.default_rng(3)\n"
        "ids=[[int(g), int(g)+1]+[int(x) for x in rng.integers(0,2,3)]"
        " for g in rng.integers(0,3,60)]\n"
        "df=trace([(0.05*i, 19, 1+i%7) for i in range(60)], ids)\n"
        "r=run(df, blocks=30, max_num_seqs=4)\n"
        "h=hashlib.sha256(pd.util.hash_pandas_object(r.requests).values.tobytes()"
        "+pd.util.hash_pandas_object(r.steps).values.tobytes()).hexdigest()\n"
        "print(h, int(r.requests['cached_tokens'].sum()))\n"
    )
    outs = set()
    for seed in ("1", "2"):
        env = {"PYTHONHASHSEED": seed, "PATH": "", **_pythonpath()}
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        ).stdout.split()
        outs.add(tuple(out))
    assert len(outs) == 1
    ((digest, hits),) = outs
    assert int(hits) > 0


def _pythonpath():
    import os

    return {k: os.environ[k] for k in ("PYTHONPATH", "HOME") if k in os.environ}


def test_metadata_digest_is_stable():
    # block_keys numbers chains in order of first appearance only through np.unique: the
    # keys are a pure function of the ids (no hash randomization).
    k1 = block_keys([[5, 6, 7], [5, 6, 8]], np.array([12, 12]), 4, 4)
    digest = hashlib.sha256(json.dumps(k1.keys.tolist()).encode()).hexdigest()
    k2 = block_keys([[5, 6, 7], [5, 6, 8]], np.array([12, 12]), 4, 4)
    assert digest == hashlib.sha256(json.dumps(k2.keys.tolist()).encode()).hexdigest()
    assert list(k1.keys[:2]) == list(k1.keys[3:5])


def test_uncached_prefill_serves_the_request_that_hits_first():
    # One seat. Request 0 runs alone and leaves its 10 blocks cached; 1 runs 30 tokens
    # from t=5 while 2 (nothing cached) and 3 (its first 8 blocks are 0's) wait.
    ids = [
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        [20],
        list(range(40, 50)),
        [1, 2, 3, 4, 5, 6, 7, 8, 90, 91],
    ]
    rows = [(0.0, 40, 1), (5.0, 4, 30), (5.1, 40, 1), (5.2, 40, 1)]
    df = trace(rows, ids)
    order = {}
    for policy in ("fcfs", "uncached-prefill"):
        config = EngineConfig(num_gpu_blocks=100, block_size=4, max_num_seqs=1)
        res = simulate(df, policy, PROF, config, hash_block_tokens=4)
        order[policy] = list(res.requests.sort_values("first_scheduled_s")["request_id"])
        hits = list(res.requests["cached_tokens"])
    assert order["fcfs"] == [0, 1, 2, 3]
    assert order["uncached-prefill"] == [0, 1, 3, 2]  # 3 hits 32 tokens: 8 left to prefill
    assert hits == [0, 0, 0, 32]


def test_chain_numbers_equal_exactly_where_prefixes_are_equal():
    # 600 requests: the first levels go through np.unique, the long tails a dictionary.
    rng = np.random.default_rng(5)
    ids = [rng.integers(0, 2, int(rng.integers(0, 12))).tolist() for _ in range(600)]
    ids += [[0] * 30, [0] * 29 + [1]]
    flat, starts, lens = _flatten(ids)
    chain = chain_numbers(flat, starts, lens)
    number = {}
    for i, h in enumerate(ids):
        for j in range(len(h)):
            number.setdefault(tuple(h[: j + 1]), set()).add(int(chain[starts[i] + j]))
    assert all(len(v) == 1 for v in number.values())  # equal prefixes, one number
    assert len({next(iter(v)) for v in number.values()}) == len(number)  # and only they
