"""Check that a change to the engine leaves its results bit for bit the same.

Runs the simulator on a set of small, varied cases (both engine modes, fast and
step-by-step, prefix caching with hash_ids, closed-loop sessions, preemption under a
small KV pool, dynamic policies, stop_after, a front-end overhead) and either saves
requests/steps frames as golden Parquet files (`save DIR`) or compares the current
code's frames with them exactly (`check DIR`). Four fleet cases (4 replicas: round-robin,
least-loaded with sessions and prefix caching, vllm-dp with a load refresh, prefix routing
with stop_after) follow. The `replica` column, added by the fleet, is compared in the
fleet cases only. Prints one row per case.

    python benchmarks/engine_equality.py save /tmp/golden   # before a change
    python benchmarks/engine_equality.py check /tmp/golden  # after it
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from sim.config import EngineConfig
from sim.profile import load_profile
from sim.run import simulate


def _plain(n: int, rate: float, seed: int, prompt=(10, 900), output=(1, 400)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "request_id": np.arange(n),
            "arrival_s": np.cumsum(rng.exponential(1 / rate, n)),
            "prompt_tokens": rng.integers(prompt[0], prompt[1], n),
            "output_tokens": rng.integers(output[0], output[1], n),
        }
    )


def _shared_prefix(n: int, seed: int, block: int = 16) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows, ids = [], []
    t = 0.0
    for _ in range(n):
        g = int(rng.integers(4))
        shared, own = int(rng.integers(2, 12)), int(rng.integers(1, 8))
        prompt = (shared + own) * block - int(rng.integers(0, block))
        own_ids = [int(x) for x in rng.integers(0, 5, own)]
        ids.append([1000 * g + j for j in range(shared)] + own_ids)
        t += float(rng.exponential(0.05))
        rows.append((t, prompt, int(rng.integers(1, 120))))
    df = pd.DataFrame(rows, columns=["arrival_s", "prompt_tokens", "output_tokens"])
    df.insert(0, "request_id", np.arange(n))
    df["hash_ids"] = ids
    return df


def _sessions(num_sessions: int, seed: int, block: int = 16) -> pd.DataFrame:
    """Multi-turn chats: turn k's prompt is the conversation so far (its hash ids extend
    the previous turn's), sent think_s after the previous answer."""
    rng = np.random.default_rng(seed)
    rows = []
    t, rid, nxt_id = 0.0, 0, 1
    for s in range(num_sessions):
        t += float(rng.exponential(0.3))
        arrival, ids, tokens = t, [], 0
        for turn in range(int(rng.integers(1, 5))):
            user = int(rng.integers(5, 80))
            out = int(rng.integers(1, 90))
            tokens += user
            full = tokens // block
            ids = ids + list(range(nxt_id, nxt_id + full - len(ids)))
            nxt_id += full
            think = float(rng.choice([0.0, 0.5, 2.0]))
            rows.append((rid, arrival, tokens, out, list(ids), s, turn, think))
            rid += 1
            arrival += think
            tokens += out
    return pd.DataFrame(
        rows,
        columns=[
            "request_id",
            "arrival_s",
            "prompt_tokens",
            "output_tokens",
            "hash_ids",
            "session_id",
            "turn",
            "think_s",
        ],
    )


def cases() -> dict[str, tuple[pd.DataFrame, str, dict, dict]]:
    """name -> (trace, policy, EngineConfig fields, profile overrides)."""
    burst = _plain(300, 1e9, 3)
    burst["arrival_s"] = 0.0
    return {
        "v1-fcfs": (_plain(400, 20, 1), "fcfs", dict(num_gpu_blocks=3000), {}),
        "v1-sjf-starv-preempt": (
            _plain(300, 40, 2),
            "sjf-oracle:starvation=50,quantum=5",
            dict(num_gpu_blocks=300, max_num_batched_tokens=512),
            {},
        ),
        "v1-mlfq": (_plain(300, 30, 4), "mlfq", dict(num_gpu_blocks=800), {}),
        "paper-swap": (
            _plain(300, 40, 5),
            "sjf-oracle:starvation=50",
            dict(num_gpu_blocks=300, engine_mode="ltr-paper"),
            {},
        ),
        "paper-recompute": (
            _plain(250, 30, 6),
            "srtf-oracle",
            dict(num_gpu_blocks=250, engine_mode="ltr-paper", preemption="recompute"),
            {},
        ),
        "v1-prefix": (
            _shared_prefix(300, 7),
            "uncached-prefill",
            dict(num_gpu_blocks=200, max_num_seqs=16),
            {},
        ),
        "v1-sessions": (
            _sessions(120, 8),
            "fcfs",
            dict(num_gpu_blocks=150, max_num_seqs=8),
            {"request_overhead_s": 0.01},
        ),
        "paper-sessions-prefix": (
            _sessions(100, 9),
            "sjf-oracle:starvation=50,quantum=5",
            dict(num_gpu_blocks=150, engine_mode="ltr-paper", enable_prefix_caching=True),
            {},
        ),
        "v1-stop-after": (
            burst,
            "sjf-oracle",
            dict(num_gpu_blocks=1000, stop_after=100, max_num_seqs=32),
            {},
        ),
        "v1-no-chunk": (
            _plain(200, 25, 10),
            "prompt-length",
            dict(num_gpu_blocks=400, chunked_prefill=False, max_num_batched_tokens=1024),
            {},
        ),
    }


# Fleets of 4 replicas (name -> trace, policy, EngineConfig fields, simulate()'s fleet
# arguments): a replica's steps may run in one event only while nothing can be dispatched.
FLEET_CASES = {
    "fleet-round-robin": (
        lambda: _plain(600, 80, 11),
        "fcfs",
        dict(num_gpu_blocks=1500),
        dict(replicas=4, router="round-robin"),
    ),
    "fleet-least-loaded-sessions": (
        lambda: _sessions(150, 12),
        "sjf-oracle:starvation=50,quantum=5",
        dict(num_gpu_blocks=150, max_num_seqs=8, enable_prefix_caching=True),
        dict(replicas=4, router="least-loaded"),
    ),
    "fleet-vllm-dp-refresh": (
        lambda: _plain(500, 100, 13),
        "fcfs",
        dict(num_gpu_blocks=600),
        dict(replicas=4, router="vllm-dp", router_refresh_s=0.1),
    ),
    "fleet-prefix-stop-after": (
        lambda: _shared_prefix(400, 14),
        "fcfs",
        dict(num_gpu_blocks=300, stop_after=300),
        dict(replicas=4, router="prefix"),
    ),
}


def all_cases() -> dict[str, tuple[pd.DataFrame, str, dict, dict, dict]]:
    """cases() with no fleet arguments, then the fleet cases (no profile overrides)."""
    out = {name: (*case, {}) for name, case in cases().items()}
    for name, (trace, policy, cfg, fleet) in FLEET_CASES.items():
        out[name] = (trace(), policy, cfg, {}, fleet)
    return out


def run_case(trace, policy, cfg, prof_over, fast: bool, fleet: dict | None = None):
    prof = load_profile()
    if prof_over:
        prof = dataclasses.replace(prof, **prof_over)
    config = EngineConfig(fast_forward=fast, **cfg)
    return simulate(trace, policy, prof, config, hash_block_tokens=16, **(fleet or {}))


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("save", "check"):
        print("usage: engine_equality.py save|check DIR", file=sys.stderr)
        return 2
    mode, out = argv[0], Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    bad = 0
    print(f"{'case':28} {'mode':5} {'requests':>8} {'steps':>7}  result")
    for name, (trace, policy, cfg, prof_over, fleet) in all_cases().items():
        for fast in (True, False):
            res = run_case(trace, policy, cfg, prof_over, fast, fleet)
            tag = f"{name}-{'fast' if fast else 'step'}"
            frames = {"requests": res.requests, "steps": res.steps}
            status = "saved"
            for kind, df in frames.items():
                if not fleet:  # saved before the fleet added the column
                    df = df.drop(columns=["replica"], errors="ignore")
                df = df.reset_index(drop=True)
                path = out / f"{tag}-{kind}.parquet"
                if mode == "save":
                    df.to_parquet(path)
                    continue
                gold = pd.read_parquet(path)
                try:
                    pd.testing.assert_frame_equal(df, gold, check_exact=True)
                except AssertionError as e:
                    status = f"DIFFERS ({kind}): {str(e).splitlines()[0]}"
                    bad += 1
            if mode == "check" and status == "saved":
                status = "equal"
            mode_s = "fast" if fast else "step"
            print(f"{name:28} {mode_s:5} {len(res.requests):8d} {len(res.steps):7d}  {status}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
