"""The simulated fleet: N engine cores behind a router (sim/fleet.py).

The routers here are local stand-ins written against policies/routing/base.Router; the
registered routers are tested with the routing package.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from policies.routing.base import Router
from sim.config import EngineConfig
from sim.errors import SimError
from sim.profile import load_profile
from sim.run import Replica, simulate
from tests.sim.conftest import fixed_profile, make_trace

PROFILE = load_profile()


class RoundRobin(Router):
    """The k-th dispatched request goes to replica k mod N."""

    name = "test-round-robin"

    def __init__(self) -> None:
        self.k = 0

    def route(self, request, replicas, probe, now_s):
        i = self.k % len(replicas)
        self.k += 1
        return i

    def describe(self) -> str:
        return self.name


class LeastLoaded(Router):
    """vLLM's data-parallel score, waiting x 4 + running, lowest index on ties; records
    what it saw."""

    name = "test-least-loaded"

    def __init__(self) -> None:
        self.seen: list = []

    def route(self, request, replicas, probe, now_s):
        self.seen.append((request.view.request_id, now_s, tuple(replicas)))
        scores = [r.waiting * 4 + r.running for r in replicas]
        return int(np.argmin(scores))

    def describe(self) -> str:
        return self.name


class LongestPrefix(Router):
    """The replica whose cache holds the longest prefix; else request_id mod N."""

    name = "test-prefix"
    uses_prefix_cache = True

    def route(self, request, replicas, probe, now_s):
        hits = [probe.cached_prefix_tokens(r.replica, request.view.request_id) for r in replicas]
        if max(hits) == 0:
            return request.view.request_id % len(replicas)
        return int(np.argmax(hits))

    def describe(self) -> str:
        return self.name


def _same(a: pd.DataFrame, b: pd.DataFrame, drop=("replica",)) -> None:
    a = a.drop(columns=list(drop), errors="ignore").reset_index(drop=True)
    b = b.drop(columns=list(drop), errors="ignore").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def _sessions_trace(n_sessions: int, seed: int, block: int = 16) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows, t, rid, nxt = [], 0.0, 0, 1
    for s in range(n_sessions):
        t += float(rng.exponential(0.2))
        arrival, ids, tokens = t, [], 0
        for turn in range(int(rng.integers(1, 4))):
            tokens += int(rng.integers(5, 60))
            out = int(rng.integers(1, 60))
            full = tokens // block
            ids = ids + list(range(nxt, nxt + full - len(ids)))
            nxt += full
            think = float(rng.choice([0.0, 0.3, 1.0]))
            rows.append((rid, arrival, tokens, out, list(ids), s, turn, think))
            rid += 1
            arrival += think
            tokens += out
    cols = ["request_id", "arrival_s", "prompt_tokens", "output_tokens", "hash_ids"]
    return pd.DataFrame(rows, columns=[*cols, "session_id", "turn", "think_s"])


# ------------------------------------------------------------- one replica
@pytest.mark.parametrize("mode", ["vllm-v1", "ltr-paper"])
@pytest.mark.parametrize("fast", [True, False])
def test_one_replica_behind_a_router_is_the_single_server(mode, fast):
    df = make_trace(150, 30.0, seed=3, prompt=(10, 600), output=(1, 300))
    cfg = EngineConfig(num_gpu_blocks=400, engine_mode=mode, fast_forward=fast)
    policy = "sjf-oracle:starvation=50,quantum=5"
    alone = simulate(df, policy, PROFILE, cfg)
    fleet = simulate(df, policy, PROFILE, cfg, replicas=1, router=LeastLoaded())
    _same(alone.requests, fleet.requests, drop=())
    _same(alone.steps, fleet.steps, drop=())
    assert (fleet.requests["replica"] == 0).all() and (fleet.steps["replica"] == 0).all()
    assert "per_replica" not in fleet.summary


# ------------------------------------------------------ round-robin = split
@pytest.mark.parametrize("mode", ["vllm-v1", "ltr-paper"])
@pytest.mark.parametrize("n", [2, 3])
def test_round_robin_equals_separate_runs_of_the_split_trace(mode, n):
    df = make_trace(180, 60.0, seed=11, prompt=(10, 800), output=(1, 300))
    cfg = EngineConfig(num_gpu_blocks=300, max_num_seqs=16, engine_mode=mode)
    res = simulate(df, "sjf-oracle", PROFILE, cfg, replicas=n, router=RoundRobin())
    req = res.requests
    assert list(req["replica"]) == [k % n for k in range(len(df))]
    for i in range(n):
        part = df.iloc[i::n].reset_index(drop=True)
        alone = simulate(part, "sjf-oracle", PROFILE, cfg)
        mine = req[req["replica"] == i]
        _same(mine, alone.requests)
        _same(res.steps[res.steps["replica"] == i], alone.steps)
    per = res.summary["per_replica"]
    assert [p["requests"] for p in per] == [len(df.iloc[i::n]) for i in range(n)]
    assert res.summary["completed"] == len(df) and res.summary["replicas"] == n


# ------------------------------------------------------------ properties
@st.composite
def fleets(draw):
    seed = draw(st.integers(0, 10_000))
    if draw(st.booleans()):
        df = _sessions_trace(draw(st.integers(1, 25)), seed)
    else:
        n = draw(st.integers(1, 60))
        df = make_trace(
            n, draw(st.sampled_from([5.0, 50.0, 500.0])), seed, prompt=(1, 600), output=(1, 200)
        )
    cfg = dict(
        num_gpu_blocks=draw(st.sampled_from([30, 120, 2000])),
        max_num_seqs=draw(st.sampled_from([2, 16])),
        max_num_batched_tokens=draw(st.sampled_from([64, 512])),
        engine_mode=draw(st.sampled_from(["vllm-v1", "ltr-paper"])),
        stop_after=draw(st.sampled_from([None, None, 5])),
    )
    if cfg["engine_mode"] == "ltr-paper":
        cfg["enable_prefix_caching"] = draw(st.booleans())
    policy = draw(st.sampled_from(["fcfs", "sjf-oracle", "sjf-oracle:starvation=10,quantum=3"]))
    replicas = draw(st.integers(2, 4))
    router = draw(st.sampled_from(["rr", "ll"]))
    refresh = draw(st.sampled_from([0.0, 0.0, 0.05]))
    return df, cfg, policy, replicas, router, refresh


def _fleet_run(df, cfg, policy, replicas, router, refresh, fast):
    rt = RoundRobin() if router == "rr" else LeastLoaded()
    config = EngineConfig(fast_forward=fast, **cfg)
    res = simulate(
        df,
        policy,
        PROFILE,
        config,
        hash_block_tokens=16,
        replicas=replicas,
        router=rt,
        router_refresh_s=refresh,
    )
    return res, rt


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleets())
def test_fleet_fast_mode_equals_step_by_step(sc):
    runs = []
    for fast in (True, False):
        try:
            runs.append(_fleet_run(*sc, fast))
        except SimError as e:
            assert "no progress" in str(e)
            reject()
    (a, ra), (b, rb) = runs
    _same(a.requests, b.requests, drop=())
    _same(a.steps, b.steps, drop=())
    if isinstance(ra, LeastLoaded):  # the router saw the same loads at the same times
        assert ra.seen == rb.seen
    req = a.requests
    assert (req.loc[req["status"] != "unfinished", "replica"] >= 0).all()
    for e in a.fleet.engines:
        assert (np.diff(a.steps.loc[a.steps["replica"] == e.replica, "start_s"]) > 0).all()


def test_fleet_runs_are_deterministic():
    df = _sessions_trace(40, 5)
    cfg = EngineConfig(num_gpu_blocks=200, max_num_seqs=8)
    a = simulate(df, "fcfs", PROFILE, cfg, hash_block_tokens=16, replicas=3, router=LeastLoaded())
    b = simulate(df, "fcfs", PROFILE, cfg, hash_block_tokens=16, replicas=3, router=LeastLoaded())
    _same(a.requests, b.requests, drop=())
    _same(a.steps, b.steps, drop=())
    # A later turn is sent think_s after the previous turn's answer, wherever it ran.
    req = a.requests.set_index("request_id")
    for _, g in df.groupby("session_id"):
        ids = list(g.sort_values("turn")["request_id"])
        for prev, nxt in zip(ids, ids[1:], strict=False):
            think = float(df.set_index("request_id").loc[nxt, "think_s"])
            assert req.loc[nxt, "arrival_s"] == pytest.approx(req.loc[prev, "finish_s"] + think)


# ----------------------------------------------------------- hand-worked
def test_loads_seen_during_a_step_and_after_it():
    # Fixed times: a step costs 1 s. Request 0 arrives at 0 and runs [0, 1) (prefill, its
    # one token). Request 1 arrives at 0.5: replica 0 is mid-step with one running
    # request, so least-loaded sends it to replica 1. Request 2 arrives at 1.0, when the
    # first step has ended and request 0 finished: replica 0 is empty again.
    prof = fixed_profile(c0_s=1.0)
    df = pd.DataFrame(
        {
            "request_id": [0, 1, 2],
            "arrival_s": [0.0, 0.5, 1.0],
            "prompt_tokens": [10, 10, 10],
            "output_tokens": [1, 5, 1],
        }
    )
    rt = LeastLoaded()
    res = simulate(df, "fcfs", prof, EngineConfig(num_gpu_blocks=100), replicas=2, router=rt)
    assert list(res.requests["replica"]) == [0, 1, 0]
    _, t1, loads1 = rt.seen[1]
    assert t1 == 0.5 and (loads1[0].running, loads1[0].waiting) == (1, 0)
    _, t2, loads2 = rt.seen[2]
    assert (loads2[0].running, loads2[1].running) == (0, 1)
    assert loads2[0].kv_blocks_used == 0 and loads2[1].kv_blocks_used == 1


def test_stale_loads_send_a_burst_to_one_replica():
    # Least-loaded over loads refreshed once a second: a burst at t=0.5 sees the loads
    # of t=0 (all idle) and, ties going to the lowest index, lands on replica 0; with
    # exact loads it spreads.
    df = make_trace(8, 1.0, seed=1)
    df["arrival_s"] = 0.5
    cfg = EngineConfig(num_gpu_blocks=1000)
    stale = simulate(
        df, "fcfs", PROFILE, cfg, replicas=4, router=LeastLoaded(), router_refresh_s=1.0
    )
    exact = simulate(df, "fcfs", PROFILE, cfg, replicas=4, router=LeastLoaded())
    assert (stale.requests["replica"] == 0).all()
    assert sorted(exact.requests["replica"]) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert stale.summary["router_refresh_s"] == 1.0


def test_prefix_probe_reads_each_replica_cache():
    # Request 1 repeats request 0's first 3 blocks (block 4) after request 0 finished on
    # replica 0: the prefix router sends it there and it hits 12 tokens; round-robin sends
    # it to replica 1, which has nothing cached.
    prof = fixed_profile(c0_s=1.0)
    df = pd.DataFrame(
        {
            "request_id": [0, 1],
            "arrival_s": [0.0, 5.0],
            "prompt_tokens": [16, 16],
            "output_tokens": [2, 2],
            "hash_ids": [[1, 2, 3, 4], [1, 2, 3, 9]],
        }
    )
    cfg = EngineConfig(num_gpu_blocks=100, block_size=4)
    pre = simulate(df, "fcfs", prof, cfg, hash_block_tokens=4, replicas=2, router=LongestPrefix())
    rr = simulate(df, "fcfs", prof, cfg, hash_block_tokens=4, replicas=2, router=RoundRobin())
    assert list(pre.requests["replica"]) == [0, 0]
    assert list(pre.requests["cached_tokens"]) == [0, 12]
    assert list(rr.requests["replica"]) == [0, 1]
    assert list(rr.requests["cached_tokens"]) == [0, 0]


def test_replicas_may_differ():
    # Two identical requests at t=0, one per replica: the replica whose steps cost twice
    # as much finishes its request twice as late; the per-replica summary says so.
    df = pd.DataFrame(
        {
            "request_id": [0, 1],
            "arrival_s": [0.0, 0.0],
            "prompt_tokens": [10, 10],
            "output_tokens": [4, 4],
        }
    )
    fast, slow = fixed_profile(c0_s=1.0), fixed_profile(c0_s=2.0)
    cfg = EngineConfig(num_gpu_blocks=50)
    reps = [Replica(fast, cfg), Replica(slow, EngineConfig(num_gpu_blocks=60, max_num_seqs=8))]
    res = simulate(df, "fcfs", None, cfg, replicas=reps, router=RoundRobin())
    lat = res.requests["latency_s"].tolist()
    assert lat == [4.0, 8.0]
    per = res.summary["per_replica"]
    assert [p["num_gpu_blocks"] for p in per] == [50, 60]
    assert [p["mean_latency_s"] for p in per] == [4.0, 8.0]


def test_fleet_errors_are_one_line():
    df = make_trace(5, 1.0)
    with pytest.raises(SimError, match="2 replicas need a router"):
        simulate(df, "fcfs", PROFILE, EngineConfig(num_gpu_blocks=100), replicas=2)
    with pytest.raises(SimError, match="--replicas: must be >= 1"):
        simulate(df, "fcfs", PROFILE, EngineConfig(num_gpu_blocks=100), replicas=0)
    reps = [Replica(config=EngineConfig(block_size=16)), Replica(config=EngineConfig(block_size=8))]
    with pytest.raises(SimError, match="replicas must share block_size"):
        simulate(df, "fcfs", PROFILE, replicas=reps, router=RoundRobin())


# -------------------------------------------------------------------- CLI
@pytest.fixture
def trace_file(tmp_path):
    from traces.io import write_trace

    path = tmp_path / "t.parquet"
    write_trace(make_trace(60, 30.0, seed=2), path, {"source": "test"})
    return path


def test_cli_fleet_writes_replica_columns_and_sections(trace_file, tmp_path, capsys):
    import json

    from ltrsched.cli import main

    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "replicas:\n  - {count: 2, num_gpu_blocks: 3000}\n  - {num_gpu_blocks: 500}\n"
        "router: round-robin\n"
    )
    out = tmp_path / "run"
    args = ["simulate", "--trace", str(trace_file), "--fleet", str(fleet), "--out", str(out)]
    assert main([*args, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["replicas"] == 3 and summary["completed"] == 60
    assert [p["num_gpu_blocks"] for p in summary["per_replica"]] == [3000, 3000, 500]
    req = pd.read_parquet(out / "requests.parquet")
    steps = pd.read_parquet(out / "steps.parquet")
    assert list(req["replica"]) == [k % 3 for k in range(60)]
    assert set(steps["replica"]) == {0, 1, 2}
    rc = main(
        ["simulate", "--trace", str(trace_file), "--replicas", "2", "--router", "round-robin"]
    )
    assert rc == 0 and "2 replicas, router" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--replicas", "2"], "2 replicas need --router"),
        (["--replicas", "0"], "--replicas: must be >= 1"),
        (["--replicas", "3", "--replica-profile", "x", "--router", "r"], "lists 1 replicas"),
        (["--router-refresh-s", "-1"], "--router-refresh-s: must be >= 0"),
    ],
)
def test_cli_fleet_errors_are_one_line(trace_file, capsys, args, needle):
    from ltrsched.cli import main

    rc = main(["simulate", "--trace", str(trace_file), *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and needle in err and len(err.splitlines()) == 1


def test_fleet_file_errors_name_the_file_and_entry(trace_file, tmp_path, capsys):
    from ltrsched.cli import main

    bad = tmp_path / "f.yaml"
    bad.write_text("replicas:\n  - {count: 2}\n  - {gpus: 2}\n")
    rc = main(["simulate", "--trace", str(trace_file), "--fleet", str(bad)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and f"--fleet {bad}: replicas[1]: unknown key(s) gpus" in err


def test_cli_replica_profiles(trace_file, capsys):
    import json

    from ltrsched.cli import main

    name = PROFILE.name
    args = ["--replica-profile", name, "--replica-profile", name, "--router", "round-robin"]
    rc = main(["simulate", "--trace", str(trace_file), *args, "--num-gpu-blocks", "700", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert rc == 0 and summary["replicas"] == 2
    assert [p["num_gpu_blocks"] for p in summary["per_replica"]] == [700, 700]
    assert [p["requests"] for p in summary["per_replica"]] == [30, 30]


def test_fleet_replicas_take_every_limit_simulate_takes_from_the_profile():
    # The same limits as `simulate --profile` (sim.profile.PROFILE_LIMITS), max_model_len
    # included; a limit given on the command line wins.
    from sim.config import EngineConfig
    from sim.fleet_file import fleet_replicas
    from sim.profile import PROFILE_LIMITS, load_profile

    engine = load_profile().engine
    assert engine.get("max_model_len")
    (replica,) = fleet_replicas([{}], EngineConfig(), {}, None)
    for k in PROFILE_LIMITS:
        if engine.get(k) is not None:
            assert getattr(replica.config, k) == int(engine[k]), k
    (given,) = fleet_replicas([{}], EngineConfig(), {"max_model_len": 1000}, None)
    assert given.config.max_model_len == 1000
