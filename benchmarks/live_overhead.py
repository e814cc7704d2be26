"""The scheduler plug-in's own time per engine step, against the step time, as the
queue grows: a burst of N requests at t=0 on the CPU build of vLLM (tiny Llama), under
FCFS, SJF-oracle (static keys: only running requests are re-keyed) and LTR with
starvation prevention (dynamic keys: every request, every step).

    python benchmarks/live_overhead.py --out runs/live_overhead --n 2000
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import numpy as np
import pandas as pd

from live.engine import EngineOptions, replay_on_new_engine
from live.models import write_tiny_llama
from live.run import RunSpec

POLICIES = ("fcfs", "sjf-oracle", "ltr:starvation=200,quantum=10")
BINS = [-1, 0, 10, 100, 500, 1000, 2000, 5000, 10_000]


def burst(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = rng.integers(4, 65, n)
    return pd.DataFrame({"request_id": np.arange(n), "arrival_s": 0.0,
                         "prompt_tokens": rng.integers(16, 129, n), "output_tokens": out,
                         "score_len": -out + rng.normal(0, 8, n)})


async def run(args) -> dict[str, Path]:
    model = write_tiny_llama(args.out / "tiny")
    runs = {spec: args.out / spec.split(":")[0] for spec in POLICIES}
    await replay_on_new_engine(
        EngineOptions(model=str(model), dummy_weights=True, enforce_eager=True,
                      max_num_seqs=args.max_num_seqs, max_num_batched_tokens=1024),
        burst(args.n), [RunSpec(policy=s, out=o, stall_timeout_s=300) for s, o in runs.items()],
        warmup=16)
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--max-num-seqs", type=int, default=16)
    args = ap.parse_args()
    runs = asyncio.run(run(args))
    for spec, path in runs.items():
        s = pd.read_parquet(path / "steps.parquet")
        s = s[s["scheduled_requests"] > 0]
        if s.empty:
            print(f"\n{spec}: no steps logged")
            continue
        s["queue"] = pd.cut(s["waiting_requests"] + s["running_requests"], BINS)
        g = s.groupby("queue", observed=True).agg(
            steps=("plugin_s", "size"), plugin_us=("plugin_s", "mean"),
            plugin_p99_us=("plugin_s", lambda x: np.percentile(x, 99)),
            step_ms=("duration_s", "mean"))
        g["plugin_us"] *= 1e6
        g["plugin_p99_us"] *= 1e6
        g["step_ms"] *= 1e3
        g["share"] = g["plugin_us"] / (g["step_ms"] * 1e3)
        print(f"\n{spec}: plug-in time per step by requests in the scheduler "
              f"(total share {s['plugin_s'].sum() / s['duration_s'].sum():.2%})")
        print(g.round({"plugin_us": 0, "plugin_p99_us": 0, "step_ms": 2, "share": 4})
              .to_string())


if __name__ == "__main__":
    main()
