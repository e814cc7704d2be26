"""Prefix caching and sessions in live replay: prompts from hash_ids share exactly the
blocks the trace says, a session's later turn is sent only after its previous turn ended
(think_s later, the conversation so far in front), the plug-in latches vLLM's hit into
RequestView.cached_tokens; and on the CPU build of vLLM, every request's num_cached_tokens
equals the simulator's for the same trace, block size and block count."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from live_fakes import (
    EVICT_BLOCK,
    EVICT_BLOCKS,
    EVICT_HASH_BLOCK,
    EVICT_MAX_LEN,
    REPLAY_TIMEOUT_S,
    START_TIMEOUT_S,
    FakeRequest,
    evict_trace,
    run_group,
)

from live.prompts import LOW_ID, continue_session, prompt_token_ids
from live.records import FINISHED
from live.run import RunSpec, run_trace
from live.tracker import RequestTracker
from live.xargs import RequestTag
from traces.io import write_trace
from traces.prefix import hash_ids_from_token_ids
from traces.schema import HASH_BLOCK_TOKENS_KEY

HB = 16  # tokens per hash id


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


# ------------------------------------------------------------------ prompts
def test_prompts_from_hash_ids_share_exactly_the_leading_blocks():
    base = list(range(1000, 1100))
    other = base[:48] + list(range(5000, 5052))  # the same first 3 hash blocks, then not
    df = pd.DataFrame(
        {
            "request_id": [0, 1, 2, 3],
            "arrival_s": 0.0,
            "prompt_tokens": [100, 100, 100, 40],
            "hash_ids": [
                hash_ids_from_token_ids(base, HB),
                hash_ids_from_token_ids(other, HB),
                hash_ids_from_token_ids(base, HB),
                hash_ids_from_token_ids(base[:40], HB),
            ],
        }
    )
    ids, how = prompt_token_ids(df, vocab_size=32000, hash_block_tokens=HB)
    assert how == "hash_ids (blocks of 16)"
    assert [len(x) for x in ids] == [100, 100, 100, 40]
    assert all(LOW_ID <= t < 32000 - LOW_ID for x in ids for t in x)
    assert ids[2] == ids[0]  # equal ids, equal prompts
    assert common_prefix(ids[0], ids[1]) == 48  # 3 hash blocks: 1 block of 32 for vLLM on CPU
    assert common_prefix(ids[0], ids[3]) == 32  # a partial block's id is not the full one's
    synthetic, how = prompt_token_ids(df, vocab_size=32000)  # no block size: as before
    assert how == "synthetic ids" and common_prefix(synthetic[0], synthetic[2]) < 16


def test_a_later_turn_is_the_conversation_so_far_then_its_own_ids():
    own = list(range(100, 110))
    assert continue_session([1, 2, 3], [7, 8], own) == [1, 2, 3, 7, 8, 105, 106, 107, 108, 109]
    assert continue_session([1, 2, 3], [7, 8], own[:4]) == [1, 2, 3, 7]  # never longer


# ----------------------------------------------------------------- sessions
def session_trace() -> pd.DataFrame:
    """Two sessions of two turns (think 0.05 s) and one single request."""
    return pd.DataFrame(
        {
            "request_id": [0, 1, 2, 3, 4],
            "arrival_s": [0.0, 0.01, 0.02, 0.05, 0.06],
            "prompt_tokens": [20, 30, 10, 20 + 5 + 7, 30 + 6 + 4],
            "output_tokens": [5, 6, 3, 4, 2],
            "session_id": [0, 1, 2, 0, 1],
            "turn": [0, 0, 0, 1, 1],
            "think_s": [0.0, 0.0, 0.0, 0.05, 0.05],
        }
    )


@dataclass
class Event:
    kind: str
    request_id: int
    t: float


class TurnBackend:
    """Answers after a few steps with ids 10_000 + request_id * 100 + k; logs sends and
    ends; fails the requests in `fail`."""

    def __init__(self, fail=()) -> None:
        self.events: list[Event] = []
        self.prompts: dict[int, list[int]] = {}
        self.xargs: dict[int, dict] = {}
        self.fail = set(fail)

    def begin(self, run_id, t0):
        pass

    async def send(self, rec, prompt_ids, xargs, clock):
        self.events.append(Event("send", rec.request_id, clock()))
        self.prompts[rec.request_id], self.xargs[rec.request_id] = list(prompt_ids), xargs
        assert len(prompt_ids) == rec.prompt_tokens
        if rec.request_id in self.fail:
            raise RuntimeError("engine died")
        for k in range(rec.output_tokens):
            await asyncio.sleep(0.003)
            rec.on_tokens(1, clock(), [10_000 + rec.request_id * 100 + k])
        rec.finish_s = rec.last_token_s
        rec.cached_tokens = 0
        rec.status = FINISHED
        self.events.append(Event("end", rec.request_id, clock()))


def replay_sessions(tmp_path, backend):
    spec = RunSpec(policy="fcfs", out=tmp_path / "run", trace="t.parquet")
    summary = asyncio.run(run_trace(backend, session_trace(), spec, {"mode": "fake"}, 1000))
    return summary, pd.read_parquet(tmp_path / "run" / "requests.parquet").set_index("request_id")


def test_a_later_turn_is_sent_think_s_after_its_previous_turn_ended(tmp_path):
    backend = TurnBackend()
    summary, req = replay_sessions(tmp_path, backend)
    assert summary["completed"] == 5 and summary["sessions"]["turns_after_the_first"] == 2
    at = {(e.kind, e.request_id): (i, e.t) for i, e in enumerate(backend.events)}
    for turn0, turn1 in ((0, 3), (1, 4)):
        assert at[("end", turn0)][0] < at[("send", turn1)][0]  # in that order
        assert at[("send", turn1)][1] >= at[("end", turn0)][1] + 0.05  # think_s later
        # the conversation so far: its prompt, the answer as the engine gave it, then its own
        before = backend.prompts[turn0] + [
            10_000 + turn0 * 100 + k for k in range(req.loc[turn0, "output_tokens"])
        ]
        assert backend.prompts[turn1][: len(before)] == before
        # it arrives when it is sent, in the table and for the policy
        assert req.loc[turn1, "arrival_s"] == req.loc[turn1, "submit_s"]
        assert backend.xargs[turn1]["ltrsched.arrival_s"] == req.loc[turn1, "arrival_s"]
    assert req.loc[0, "arrival_s"] == 0.0  # a first turn keeps its traced arrival
    assert (req["cached_tokens"] == 0).all()


def test_a_turn_whose_previous_turn_failed_is_not_sent(tmp_path):
    backend = TurnBackend(fail={0})
    summary, req = replay_sessions(tmp_path, backend)
    assert req.loc[3, "status"] == "failed" and "request 0" in req.loc[3, "error"]
    assert 3 not in backend.prompts and req.loc[4, "status"] == "finished"
    assert req.loc[3, "cached_tokens"] == -1  # not reported: never reached the engine


# -------------------------------------------------------- the plug-in's view
@dataclass
class FakePrefillStats:
    num_prompt_tokens: int = 0
    num_cached_tokens: int = 0


def test_the_view_takes_vllms_hit_at_the_first_scheduling():
    tracker = RequestTracker()
    new = FakeRequest("a", num_prompt_tokens=100)  # vLLM 0.32: the hit in prefill_stats
    new.prefill_stats = FakePrefillStats()
    old = FakeRequest("b", num_prompt_tokens=80)  # earlier releases: num_cached_tokens
    old.num_cached_tokens = -1
    views = {
        r.request_id: tracker.add(r, RequestTag(i, 0.0, 4), 0.0) for i, r in enumerate((new, old))
    }
    assert tracker.note_scheduled("a") == 0 and tracker.note_scheduled("b") == 0  # not yet
    new.prefill_stats = FakePrefillStats(100, 64)
    old.num_cached_tokens = 48
    assert tracker.note_scheduled("a") == 64 and tracker.note_scheduled("b") == 48
    assert (views["a"].cached_tokens, views["b"].cached_tokens) == (64, 48)
    new.prefill_stats = None  # vLLM hands the stats on when the prefill ends
    assert tracker.note_scheduled("a") == 0 and views["a"].cached_tokens == 64  # once only


# ------------------------------------------------------- on the CPU vLLM
BLOCK, BLOCKS, MAX_LEN = 32, 512, 512  # vLLM on CPU takes multiples of 32


def cpu_trace() -> tuple[pd.DataFrame, dict[int, int]]:
    """Shared system prompts (64 tokens) before 40-token questions, one prompt twice, and
    two sessions of two turns; returns the trace and each row's expected hit in tokens."""
    system = [list(range(1000, 1064)), list(range(2000, 2064))]
    question = [list(range(3000, 3040)), list(range(4000, 4040))]
    content = [
        system[0] + question[0],
        system[0] + question[1],
        system[1] + question[0],
        system[0] + question[0],
        system[1] + question[1],
    ]
    expect = [0, 64, 0, (104 - 1) // BLOCK * BLOCK, 64]  # a full hit recomputes a block
    arrival = [0.0, 0.3, 0.6, 0.9, 1.2]
    outputs = [8] * 5
    for base, t0 in ((5000, 1.5), (6000, 1.6)):
        turn0, answer, more = (
            list(range(base, base + 50)),
            list(range(base + 50, base + 70)),
            list(range(base + 70, base + 100)),
        )
        content += [turn0, turn0 + answer + more]
        expect += [0, (50 + 20 - 1) // BLOCK * BLOCK]  # turn 0's full blocks, answer included
        arrival += [t0, t0 + 0.2]
        outputs += [20, 8]
    n = len(content)
    sessions = [*range(5), 5, 5, 6, 6]
    df = pd.DataFrame(
        {
            "request_id": np.arange(n),
            "arrival_s": arrival,
            "prompt_tokens": [len(c) for c in content],
            "output_tokens": outputs,
            "hash_ids": [hash_ids_from_token_ids(c, HB) for c in content],
            "session_id": sessions,
            "turn": [0] * 5 + [0, 1, 0, 1],
            "think_s": [0.0] * 5 + [0.0, 0.2, 0.0, 0.2],
        }
    )
    order = np.argsort(df["arrival_s"].to_numpy(), kind="stable")
    df = df.iloc[order].reset_index(drop=True)
    return df, dict(zip(df["request_id"], np.asarray(expect)[order], strict=True))


def replay_and_simulate(d, df: pd.DataFrame, blocks: int, max_len: int) -> dict:
    """Replay df on the CPU vLLM (tiny Llama, prefix caching on, `blocks` KV blocks of
    BLOCK tokens) and simulate it with the same limits and one block fewer (vLLM's block
    0 is its null block); the run's summary, both request tables (by request_id) and the
    live steps."""
    from live.models import write_tiny_llama
    from ltrsched.cli import main as ltrsched_main

    model = write_tiny_llama(d / "tiny")
    trace = d / "trace.parquet"
    write_trace(df, trace, {"source": "test", HASH_BLOCK_TOKENS_KEY: HB})
    limits = [
        "--max-num-seqs",
        "4",
        "--max-batched-tokens",
        "256",
        "--max-model-len",
        str(max_len),
        "--block-size",
        str(BLOCK),
    ]
    cmd = [
        sys.executable,
        "-m",
        "live.cli",
        "replay",
        "--trace",
        str(trace),
        "--model",
        str(model),
        "--dummy-weights",
        "--enforce-eager",
        "--num-gpu-blocks",
        str(blocks),
        "--prefix-caching",
        "--warmup",
        "2",
        "--stall-timeout",
        "60",
        "--out",
        str(d / "live"),
        "--json",
        *limits,
    ]
    proc = run_group(cmd, START_TIMEOUT_S + REPLAY_TIMEOUT_S)  # the engine dies with it
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout)
    rc = ltrsched_main(
        [
            "simulate",
            "--trace",
            str(trace),
            "--num-gpu-blocks",
            str(blocks - 1),
            "--prefix-caching",
            "--out",
            str(d / "sim"),
            "--json",
            *limits,
        ]
    )
    assert rc == 0
    live = pd.read_parquet(d / "live" / "requests.parquet").set_index("request_id")
    sim = pd.read_parquet(d / "sim" / "requests.parquet").set_index("request_id")
    return {
        "summary": summary,
        "live": live,
        "sim": sim,
        "steps": pd.read_parquet(d / "live" / "steps.parquet"),
        "sim_summary": json.loads((d / "sim" / "summary.json").read_text()),
    }


@pytest.fixture(scope="module")
def cpu_runs(tmp_path_factory):
    pytest.importorskip("vllm")
    df, expect = cpu_trace()
    runs = replay_and_simulate(tmp_path_factory.mktemp("prefix"), df, BLOCKS, MAX_LEN)
    return {**runs, "expect": expect}


@pytest.fixture(scope="module")
def evict_runs(tmp_path_factory):
    """The same on a pool of 8 blocks, where a session's earlier blocks are evicted
    during its think time (live_fakes.evict_trace)."""
    pytest.importorskip("vllm")
    assert (EVICT_BLOCK, EVICT_HASH_BLOCK) == (BLOCK, HB)
    df, expect = evict_trace()
    runs = replay_and_simulate(tmp_path_factory.mktemp("evict"), df, EVICT_BLOCKS, EVICT_MAX_LEN)
    return {**runs, "expect": expect}


def test_vllm_hits_equal_the_simulators_request_by_request(cpu_runs):
    live, sim, s = cpu_runs["live"], cpu_runs["sim"], cpu_runs["summary"]
    assert (s["prefix_caching"], s["block_size"], s["num_gpu_blocks"]) == (True, BLOCK, BLOCKS)
    assert s["completed"] == len(live) and (live["status"] == "finished").all()
    assert live["cached_tokens"].to_dict() == cpu_runs["expect"]
    assert sim["cached_tokens"].to_dict() == cpu_runs["expect"]
    steps = cpu_runs["steps"]  # the step log: each hit counted once, at its first step
    assert steps["cached_tokens"].sum() == live["cached_tokens"].sum()
    assert (steps["prefill_ctx_tokens"] > 0).any() and (steps["blocks_evicted"] == 0).all()


def test_vllm_gets_a_later_turn_only_after_the_previous_one_finished(cpu_runs):
    live = cpu_runs["live"]
    for turn0, turn1 in ((5, 6), (7, 8)):
        assert live.loc[turn1, "arrival_s"] >= live.loc[turn0, "finish_s"] + 0.2
        assert live.loc[turn1, "first_scheduled_s"] > live.loc[turn0, "finish_s"]


def test_vllm_evicts_a_sessions_blocks_during_its_think_time(evict_runs):
    """A pool small enough to evict: the session's second turn finds 2 of its earlier
    turn's 3 full blocks, the known answer of vLLM's free-queue rule (live_fakes.
    evict_trace), with every request alone in the engine."""
    live, s = evict_runs["live"], evict_runs["summary"]
    assert (s["prefix_caching"], s["block_size"], s["num_gpu_blocks"]) == (
        True,
        EVICT_BLOCK,
        EVICT_BLOCKS,
    )
    assert s["completed"] == len(live) and (live["status"] == "finished").all()
    # One request at a time: each ends before the next is first scheduled.
    for engine in (live, evict_runs["sim"]):
        ordered = engine.sort_values("first_scheduled_s")
        assert (
            ordered["finish_s"].to_numpy()[:-1] < ordered["first_scheduled_s"].to_numpy()[1:]
        ).all(), ordered
    assert live.loc[3, "arrival_s"] >= live.loc[0, "finish_s"] + 2.0  # sent after thinking
    assert live["cached_tokens"].to_dict() == evict_runs["expect"]


def test_the_simulator_evicts_the_blocks_vllm_evicts(evict_runs):
    """The simulated hits equal vLLM's request by request under eviction too."""
    assert evict_runs["sim"]["cached_tokens"].to_dict() == evict_runs["expect"]
    assert evict_runs["sim_summary"]["prefix_blocks_evicted"] == 1
