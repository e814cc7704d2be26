"""Routers x workloads on a simulated fleet: mean and p99 latency, mean TTFT, prefix hit rate.

Each workload is built once (as `ltrsched trace build` would), then simulated under FCFS
on the default profile behind each router, on 4 replicas of `--kv-blocks` KV blocks each
(2,000 blocks of 16 tokens: scarce enough that where a prompt's prefix is cached matters).
Rates are chosen to put the fleet near saturation (see WORKLOADS). Prints a markdown table.

    python benchmarks/fleet_routers.py                          # every workload and router
    python benchmarks/fleet_routers.py --workload shared-prefix --router prefix --router round-robin
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MOONCAKE = ROOT / "examples" / "mooncake-sample.jsonl"

ROUTERS = (
    "round-robin",
    "least-loaded",
    "vllm-dp",
    "prefix",
    "weighted",
    "session",
    "length:mode=work",
    "length:mode=split",
)

# name -> (BuildConfig fields, what the rate means). Rates: round-robin's mean TTFT is
# 1.8 s at 140 req/s of ShareGPT and it saturates at 80 req/s of shared-prefix (its
# cache thrashes); sessions run at 8 new sessions/s, well below saturation, because at
# rates that saturate the fleet a 2,000-block cache no longer holds a conversation across
# its think time and no router gets hits (45 sessions/s: under 2% for all).
WORKLOADS = {
    "sharegpt": (
        dict(source="sharegpt", num_requests=3000, rate=140.0, max_prompt_tokens=4000),
        "ShareGPT first turns, 3,000 requests, Poisson 140 req/s",
    ),
    "shared-prefix": (
        dict(
            source="shared-prefix",
            num_requests=2000,
            num_groups=32,
            prompts_per_group=8,
            system_prompt_len=2048,
            question_len=64,
            output_len=64,
            rate=80.0,
            hash_block_tokens=16,
        ),  # fmt: skip
        "shared-prefix, 32 system prompts of 2,048 tokens x 8 questions, 2,000 requests, 80 req/s",
    ),
    "mooncake": (
        dict(source="vllm-timed", path=str(MOONCAKE), time_scale=0.25),
        "Mooncake sample (40 requests, ~4k-token prompts), timestamps x 0.25: ~17 req/s",
    ),
    "sessions": (
        dict(
            source="sharegpt",
            turns="all",
            num_requests=600,
            rate=8.0,
            max_turns=4,
            max_prompt_tokens=4000,
            seed=1,
        ),  # fmt: skip
        "ShareGPT conversations (--turns all), 600 sessions, 8 sessions/s, up to 4 turns",
    ),
}


def build(name: str):
    """(trace, tokens per hash id) of a workload."""
    from traces.build import build_trace
    from traces.config import BuildConfig

    fields, _ = WORKLOADS[name]
    res = build_trace(BuildConfig(**fields))
    return res.df, res.meta.get("hash_block_tokens")


def run(df, hash_block_tokens, router: str, replicas: int, kv_blocks: int) -> dict:
    from sim.config import EngineConfig
    from sim.run import simulate

    config = EngineConfig(num_gpu_blocks=kv_blocks)
    res = simulate(df, "fcfs", None, config, hash_block_tokens=hash_block_tokens,
                   replicas=replicas, router=router)  # fmt: skip
    return res.summary


def fmt(x: float, unit: str = "s") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.1%}" if unit == "%" else f"{x:.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", action="append", choices=list(WORKLOADS))
    ap.add_argument("--router", action="append", help="router spec (repeat); default: all")
    ap.add_argument("--replicas", type=int, default=4)
    ap.add_argument("--kv-blocks", type=int, default=2000, help="KV blocks per replica")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    workloads = args.workload or list(WORKLOADS)
    routers = args.router or list(ROUTERS)
    print(f"{args.replicas} replicas x {args.kv_blocks} KV blocks of 16 tokens, FCFS, "
          "default profile (llama3-8b_h100_first-principles)")  # fmt: skip
    for w in workloads:
        print(f"- {w}: {WORKLOADS[w][1]}")
    print()
    print("| workload | router | mean latency (s) | p99 latency (s) | mean TTFT (s) | prefix hit |")
    print("|---|---|---|---|---|---|")
    for w in workloads:
        t0 = time.perf_counter()
        df, hbt = build(w)
        print(f"[{w}: {len(df)} requests built in {time.perf_counter() - t0:.1f} s]",
              file=sys.stderr)  # fmt: skip
        for r in routers:
            s = run(df, hbt, r, args.replicas, args.kv_blocks)
            if s["completed"] != len(df):
                print(f"[{w} {r}: {s['completed']} of {len(df)} completed]", file=sys.stderr)
            cells = [s["mean_latency_s"], s["p99_latency_s"], s["mean_ttft_s"]]
            print(f"| {w} | {r} | " + " | ".join(fmt(c) for c in cells)
                  + f" | {fmt(s['prefix_hit_rate'], '%')} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
