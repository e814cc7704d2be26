"""A live fleet: the routers of policies/routing in front of real vLLM engines.

Unit tests hold the KV event index and the load board to hand-worked cases with stand-in
events and stats; the fleet backend to round-robin over stand-in engines. On the CPU
build of vLLM, two engines replay one shared-prefix trace under round-robin,
least-loaded and prefix: each choice is checked against what the router was shown
(logged per decision), and prefix's hits against vLLM's own num_cached_tokens."""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from live_fakes import REPLAY_TIMEOUT_S, START_TIMEOUT_S, run_group

from live.fleet import ROUTE_COLUMNS, FleetBackend, LoadBoard, step_log_name
from live.kv_events import KVBlockIndex
from live.records import FINISHED
from live.run import RunSpec, run_trace
from policies.routing import make_router
from policies.routing.load import dp_load_score
from traces.io import write_trace
from traces.prefix import hash_ids_from_token_ids
from traces.schema import HASH_BLOCK_TOKENS_KEY

BS = 4  # tokens per block in the unit tests


# ------------------------------------------------------------ KV event index
@dataclass
class BlockStored:
    block_hashes: list
    parent_block_hash: object
    token_ids: list
    block_size: int


@dataclass
class BlockRemoved:
    block_hashes: list


class AllBlocksCleared:
    pass


def stored(index, hashes, parent, tokens, block_size=BS):
    index.apply([BlockStored(hashes, parent, tokens, block_size)])


def test_the_index_follows_the_chain_vllm_hashed_and_its_removals():
    index = KVBlockIndex(BS)
    prompt = list(range(100, 113))  # 3 full blocks and one token
    stored(index, [11, 12], None, prompt[:8])  # the first two blocks, as one event
    assert index.cached_prefix_tokens(prompt) == 8
    stored(index, [13], 12, prompt[8:12])  # the third, after its parent
    assert index.cached_prefix_tokens(prompt) == 12
    assert index.cached_prefix_tokens(prompt[:12]) == 8  # vLLM computes the last token
    other = prompt[:4] + [7, 7, 7, 7] + prompt[8:13]
    assert index.cached_prefix_tokens(other) == 4  # same third block, another parent
    index.apply([BlockRemoved([12])])
    assert index.cached_prefix_tokens(prompt) == 4  # a chain stops at its first gap
    index.apply([AllBlocksCleared()])
    assert index.cached_prefix_tokens(prompt) == 0 and index.blocks_held == 0


def test_a_hash_held_by_two_blocks_stays_until_both_are_removed():
    index = KVBlockIndex(BS)
    prompt = list(range(9))
    stored(index, [1, 2], None, prompt[:8])
    stored(index, [1], None, prompt[:4])  # a second copy of block 1 (same step)
    index.apply([BlockRemoved([1])])
    assert index.cached_prefix_tokens(prompt) == 8
    index.apply([BlockRemoved([1])])
    assert index.cached_prefix_tokens(prompt) == 0


def test_blocks_of_another_size_are_not_prompt_blocks():
    index = KVBlockIndex(BS)
    stored(index, [5], None, [1, 2], block_size=2)  # a partial entry (hybrid models)
    assert index.cached_prefix_tokens([1, 2, 3, 4, 5]) == 0 and index.blocks_held == 0


def test_the_index_reads_vllms_own_event_encoding():
    pytest.importorskip("vllm")
    import msgspec
    from vllm.distributed.kv_events import BlockRemoved as VBlockRemoved
    from vllm.distributed.kv_events import BlockStored as VBlockStored
    from vllm.distributed.kv_events import KVEventBatch

    batch = KVEventBatch(
        ts=0.0,
        events=[
            VBlockStored(
                block_hashes=[21, 22],
                parent_block_hash=None,
                token_ids=list(range(8)),
                block_size=BS,
                lora_id=None,
                medium="GPU",
                lora_name=None,
            ),
            VBlockRemoved(block_hashes=[22], medium="GPU"),
        ],
    )
    payload = msgspec.msgpack.Encoder().encode(batch)
    index = KVBlockIndex(BS)
    index.apply(msgspec.msgpack.Decoder(KVEventBatch).decode(payload).events)
    assert index.cached_prefix_tokens(list(range(9))) == 4


# ------------------------------------------------------------------ load board
def test_loads_are_the_latest_snapshot_plus_the_requests_sent_since():
    board = LoadBoard([101, 101])
    board.record(0, 1.0, waiting=2, running=3, kv_cache_usage=0.25)  # 25 of 100 blocks
    board.sent(0, 0.5)  # before the snapshot: in it
    board.sent(0, 1.5)  # after it: counted as waiting
    loads = board.loads(2.0)
    assert (loads[0].waiting, loads[0].running, loads[0].kv_blocks_used) == (3, 3, 25)
    assert (loads[1].waiting, loads[1].running, loads[1].num_gpu_blocks) == (0, 0, 101)
    assert board.loads(0.9)[0].waiting == 1  # at 0.9: no snapshot yet, the send at 0.5
    board.record(0, 1.8, waiting=0, running=6, kv_cache_usage=0.5)
    assert (board.loads(2.0)[0].waiting, board.loads(2.0)[0].running) == (0, 6)


def test_a_stale_router_sees_the_loads_of_the_latest_refresh_tick():
    board = LoadBoard([11], router_refresh_s=0.1)
    board.record(0, 0.05, 1, 1, 0.0)
    board.record(0, 0.15, 5, 2, 0.0)
    board.sent(0, 0.12)
    load = board.loads(0.19)[0]  # as of tick 0.1: the first snapshot, no send after it
    assert (load.waiting, load.running, load.as_of_s) == (1, 1, pytest.approx(0.1))
    load = board.loads(0.2)[0]
    assert (load.waiting, load.running) == (5, 2)


def test_a_bad_refresh_interval_is_a_user_error():
    from live.errors import LiveError

    for bad in (-1.0, math.inf, math.nan):
        with pytest.raises(LiveError, match="router-refresh-s"):
            LoadBoard([10], router_refresh_s=bad)


# ------------------------------------------------- fleet backend, stand-ins
class FakeEngine:
    """Finishes each request after a short wait; reports itself busy to the board."""

    def __init__(self, board, replica):
        self.board, self.replica, self.sent = board, replica, []

    def begin(self, run_id, t0):
        pass

    async def send(self, rec, prompt_ids, xargs, clock):
        self.sent.append((rec.request_id, xargs["ltrsched.step_log"]))
        await asyncio.sleep(0.002)
        rec.on_tokens(rec.output_tokens, clock())
        rec.finish_s = rec.last_token_s
        rec.cached_tokens = 0
        rec.status = FINISHED


def test_round_robin_over_stand_in_engines_writes_replica_and_routes(tmp_path):
    n = 7
    trace = pd.DataFrame(
        {
            "request_id": np.arange(n) + 100,
            "arrival_s": np.arange(n) * 0.01,
            "prompt_tokens": 8,
            "output_tokens": 3,
        }
    )
    board = LoadBoard([17, 17])
    engines = [FakeEngine(board, i) for i in range(2)]
    out = tmp_path / "run"
    out.mkdir()
    logs = [out / step_log_name(i) for i in range(2)]
    backend = FleetBackend(
        engines, make_router("round-robin"), board, [KVBlockIndex(BS), KVBlockIndex(BS)], logs
    )
    backend.prepare(trace)
    summary = asyncio.run(run_trace(backend, trace, RunSpec("fcfs", out), {}, 1000))
    req = pd.read_parquet(out / "requests.parquet")
    assert req.set_index("request_id")["replica"].to_dict() == {100 + k: k % 2 for k in range(n)}
    assert [r for r, _ in engines[1].sent] == [101, 103, 105]
    assert all(log.endswith(step_log_name(1)) for _, log in engines[1].sent)
    routes = pd.read_parquet(out / "routes.parquet")
    assert tuple(routes.columns) == ROUTE_COLUMNS and len(routes) == 2 * n
    assert routes[routes["chosen"]]["replica"].tolist() == [k % 2 for k in range(n)]
    assert summary["replicas"] == 2 and summary["router"] == "round-robin"
    assert [p["requests"] for p in summary["per_replica"]] == [4, 3]
    assert "replica" in pd.read_parquet(out / "steps.parquet").columns


def test_a_router_answering_outside_the_fleet_fails_the_request(tmp_path):
    class Wild:
        def describe(self):
            return "wild"

        def prepare(self, views, n):
            pass

        def route(self, request, loads, probe, now_s):
            return 5

        def on_finish(self, *a):
            pass

    trace = pd.DataFrame(
        {"request_id": [0], "arrival_s": [0.0], "prompt_tokens": [8], "output_tokens": [2]}
    )
    board = LoadBoard([9, 9])
    backend = FleetBackend(
        [FakeEngine(board, 0), FakeEngine(board, 1)],
        Wild(),
        board,
        [KVBlockIndex(BS)] * 2,
        [tmp_path / "a.jsonl", tmp_path / "b.jsonl"],
    )
    backend.prepare(trace)
    summary = asyncio.run(run_trace(backend, trace, RunSpec("fcfs", tmp_path), {}, 1000))
    assert summary["failed"] == 1 and "replica 5" in summary["failure"]


# ------------------------------------------------------------ the command line
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--replicas", "2"], "--replicas 2 needs a --router"),
        (["--replicas", "0", "--router", "round-robin"], "--replicas 0: must be at least 1"),
        (["--replicas", "2", "--router", "prefx"], "did you mean prefix"),
        (["--router", "round-robin", "--server", "http://x:1"], "not --server"),
        (["--replicas", "2", "--router", "prefix", "--router", "prefix"], "given twice"),
    ],
)
def test_fleet_options_are_checked_before_any_engine_starts(tmp_path, capsys, args, message):
    from ltrsched.cli import main as ltrsched_main

    trace = tmp_path / "t.parquet"
    write_trace(shared_prefix_trace()[0], trace, {"source": "test", HASH_BLOCK_TOKENS_KEY: 16})
    rc = ltrsched_main(
        [
            "live",
            "replay",
            "--trace",
            str(trace),
            "--out",
            str(tmp_path / "o"),
            "--model",
            str(tmp_path),
            *args,
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1


# ------------------------------------------------------------ on the CPU vLLM
BLOCK, BLOCKS, MAX_LEN = 32, 64, 512  # vLLM on CPU takes block sizes in multiples of 32
ROUTERS = ("round-robin", "least-loaded", "prefix")


def shared_prefix_trace():
    """Three 64-token system prompts (A, B, C) before 40-token questions, 0.4 s apart;
    the first A and B requests run long, so the two engines are both busy early on."""
    system = {g: list(range(1000 * (k + 1), 1000 * (k + 1) + 64)) for k, g in enumerate("ABC")}
    question = [list(range(5000 + 100 * q, 5000 + 100 * q + 40)) for q in range(3)]
    plan = [
        ("A", 0, 400),
        ("B", 0, 400),
        ("A", 1, 8),
        ("B", 1, 8),
        ("A", 0, 8),
        ("B", 2, 8),
        ("C", 0, 8),
        ("C", 1, 8),
    ]
    content = [system[g] + question[q] for g, q, _ in plan]
    df = pd.DataFrame(
        {
            "request_id": np.arange(len(plan)),
            "arrival_s": np.arange(len(plan)) * 0.4,
            "prompt_tokens": [len(c) for c in content],
            "output_tokens": [o for _, _, o in plan],
            "hash_ids": [hash_ids_from_token_ids(c, 16) for c in content],
        }
    )
    return df, [g for g, _, _ in plan]


@pytest.fixture(scope="module")
def fleet_runs(tmp_path_factory):
    pytest.importorskip("vllm")
    from live.models import write_tiny_llama

    d = tmp_path_factory.mktemp("fleet")
    model = write_tiny_llama(d / "tiny")
    df, groups = shared_prefix_trace()
    trace = d / "trace.parquet"
    write_trace(df, trace, {"source": "test", HASH_BLOCK_TOKENS_KEY: 16})
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
        str(BLOCKS),
        "--block-size",
        str(BLOCK),
        "--max-model-len",
        str(MAX_LEN),
        "--max-num-seqs",
        "4",
        "--max-batched-tokens",
        "256",
        "--gpu-memory-utilization",
        "0.05",
        "--replicas",
        "2",
        "--warmup",
        "2",
        "--stall-timeout",
        "60",
        "--out",
        str(d / "live"),
        "--json",
    ]
    for r in ROUTERS:
        cmd += ["--router", r]
    root = os.getcwd()  # the engine cores import the plug-in from this checkout
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p),
    }
    proc = run_group(cmd, START_TIMEOUT_S + REPLAY_TIMEOUT_S, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summaries = json.loads(proc.stdout)
    runs = {}
    for r, s in zip(ROUTERS, summaries, strict=True):
        run = d / "live" / r
        runs[r] = {
            "summary": s,
            "req": pd.read_parquet(run / "requests.parquet").set_index("request_id"),
            "routes": pd.read_parquet(run / "routes.parquet"),
            "steps": pd.read_parquet(run / "steps.parquet"),
            "dir": run,
        }
    return runs, groups


def test_every_request_finished_on_the_replica_the_router_chose(fleet_runs):
    runs, _ = fleet_runs
    for r, run in runs.items():
        s, req = run["summary"], run["req"]
        assert (
            s["router"].split(":")[0] == r and s["replicas"] == 2 and s["completed"] == len(req)
        ), r
        # both engines' KV events reached the driver, none lost
        assert min(s["kv_event_batches"]) > 0 and s["kv_event_batches_lost"] == [0, 0]
        chosen = run["routes"][run["routes"]["chosen"]].set_index("request_id")["replica"]
        assert req["replica"].to_dict() == chosen.to_dict()
        steps = run["steps"]  # each engine's own step log, its steps under its replica
        assert set(steps["replica"]) == {0, 1}
        for i in (0, 1):
            mine = req[req["replica"] == i]
            assert (
                steps.loc[steps["replica"] == i, "cached_tokens"].sum()
                == mine["cached_tokens"].sum()
            )
            assert (run["dir"] / step_log_name(i)).is_file()


def test_round_robin_sends_the_kth_dispatch_to_replica_k_mod_n(fleet_runs):
    routes = fleet_runs[0]["round-robin"]["routes"]
    chosen = routes[routes["chosen"]].sort_values("dispatch")
    assert chosen["request_id"].tolist() == list(range(len(chosen)))  # arrival order
    assert chosen["replica"].tolist() == [k % 2 for k in range(len(chosen))]


def test_least_loaded_picks_the_lowest_score_it_was_shown(fleet_runs):
    routes = fleet_runs[0]["least-loaded"]["routes"]
    seen_busy = False
    for _, shown in routes.groupby("dispatch"):
        score = 4 * shown["waiting"] + shown["running"]  # policies.routing.load
        best = shown.loc[score == score.min(), "replica"].min()
        assert shown.loc[shown["chosen"], "replica"].item() == best
        seen_busy |= bool((score > 0).any())
    assert seen_busy  # the loads it saw were not all zero: the stats reached it
    # the same score as the router's own
    row = routes.iloc[0]
    from policies.routing import ReplicaLoad

    load = ReplicaLoad(0, int(row["waiting"]), int(row["running"]), 0, BLOCKS, 0.0)
    assert dp_load_score(load) == 4 * row["waiting"] + row["running"]


def test_prefix_follows_the_kv_events_and_hits_what_vllm_reports(fleet_runs):
    runs, groups = fleet_runs
    run = runs["prefix"]
    routes, req = run["routes"], run["req"]
    for _, shown in routes.groupby("dispatch"):
        best = shown["cached_prefix_tokens"].max()
        if best > 0:  # the replica holding the longest prefix (KV events), by the log
            assert shown.loc[shown["chosen"], "cached_prefix_tokens"].item() == best
    chosen = routes[routes["chosen"]].set_index("request_id")
    # the hit the index promised is the hit vLLM reported, request by request
    assert chosen["cached_prefix_tokens"].to_dict() == req["cached_tokens"].to_dict()
    # each system prompt stays on the replica its first request went to
    home = {}
    for rid, g in enumerate(groups):
        home.setdefault(g, req.loc[rid, "replica"])
        assert req.loc[rid, "replica"] == home[g], (rid, g)
    assert home["A"] != home["B"]  # A's first request kept its engine busy
    expected = {0: 0, 1: 0, 2: 64, 3: 64, 4: 96, 5: 64, 6: 0, 7: 64}
    assert req["cached_tokens"].to_dict() == expected
    rr = runs["round-robin"]["summary"]["prefix_cached_tokens"]
    assert run["summary"]["prefix_cached_tokens"] > rr
