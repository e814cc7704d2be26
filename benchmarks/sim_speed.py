"""Simulator speed: simulated requests per wall second, fast mode against step-by-step.

Builds a ShareGPT length sample from the bundled dataset (cl100k counts), resamples it
to N requests with Poisson arrivals at a rate that keeps the modelled server busy, and
runs both engine modes on the same trace in one process. Prints a table.

    python benchmarks/sim_speed.py                 # 1k, 10k, 100k (step-by-step to 10k)
    python benchmarks/sim_speed.py --sizes 1000 --rate 30

A second table runs each size's trace with its prompts' hash_ids (so a resampled prompt
hits the blocks of its earlier copies) against the same trace without them, prefix
caching on in both (vLLM V1's default): the cost of the prefix cache's bookkeeping.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from sim.config import EngineConfig
from sim.run import simulate
from traces.build import build_trace
from traces.config import BuildConfig


def sharegpt_lengths() -> pd.DataFrame:
    """ShareGPT first turns: lengths and their prompts' hash_ids (16-token blocks)."""
    res = build_trace(BuildConfig(source="sharegpt", burst=True, keep_text=False))
    return res.df[["prompt_tokens", "output_tokens", "hash_ids"]]


def resampled(lengths: pd.DataFrame, n: int, rate: float, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = lengths.iloc[rng.integers(0, len(lengths), n)].reset_index(drop=True)
    rows.insert(0, "arrival_s", np.cumsum(rng.exponential(1 / rate, n)))
    rows.insert(0, "request_id", np.arange(n))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    ap.add_argument("--rate", type=float, default=40.0, help="req/s (the default keeps "
                    "the Llama-3-8B/H100 first-principles server busy)")
    ap.add_argument("--policy", default="fcfs")
    ap.add_argument("--slow-max", type=int, default=10_000,
                    help="largest size also run step by step")
    args = ap.parse_args()
    lengths = sharegpt_lengths()
    table = Table(title=f"ltrsched simulate speed, ShareGPT lengths, {args.rate} req/s, "
                  f"policy {args.policy}, Llama-3-8B/H100 first-principles profile")
    for col in ("requests", "steps", "fast wall s", "fast req/s", "step-by-step wall s",
                "step-by-step req/s", "speed-up", "identical"):
        table.add_column(col, justify="right")
    prefix = Table(title="prefix caching on: the same trace with and without hash_ids")
    for col in ("requests", "no hash_ids: engine s", "hash_ids: engine s", "ratio",
                "prefix hit rate", "blocks evicted"):
        prefix.add_column(col, justify="right")
    for n in args.sizes:
        with_ids = resampled(lengths, n, args.rate)
        t_plain = simulate(with_ids.drop(columns="hash_ids")).summary["sim_wall_s"]
        res = simulate(with_ids, hash_block_tokens=16)
        t_ids = res.summary["sim_wall_s"]
        prefix.add_row(f"{n:,}", f"{t_plain:.2f}", f"{t_ids:.2f}", f"{t_ids / t_plain:.2f}x",
                       f"{res.summary['prefix_hit_rate']:.1%}",
                       f"{res.summary['prefix_blocks_evicted']:,}")
        df = with_ids.drop(columns="hash_ids")
        t0 = time.perf_counter()
        fast = simulate(df, args.policy, config=EngineConfig(fast_forward=True))
        t_fast = time.perf_counter() - t0
        row = [f"{n:,}", f"{fast.summary['steps']:,}", f"{t_fast:.2f}", f"{n / t_fast:,.0f}"]
        if n <= args.slow_max:
            t0 = time.perf_counter()
            slow = simulate(df, args.policy, config=EngineConfig(fast_forward=False))
            t_slow = time.perf_counter() - t0
            same = fast.requests.equals(slow.requests) and fast.steps.equals(slow.steps)
            row += [f"{t_slow:.2f}", f"{n / t_slow:,.0f}", f"{t_slow / t_fast:.1f}x", str(same)]
        else:
            row += ["-", "-", "-", "-"]
        table.add_row(*row)
        Console().print(f"  {n:,} requests: mean latency {fast.summary['mean_latency_s']:.2f} s,"
                        f" throughput {fast.summary['throughput_req_s']:.1f} req/s, "
                        f"{fast.summary['preemptions']} preemptions")
    Console().print(table)
    Console().print(prefix)


if __name__ == "__main__":
    main()
