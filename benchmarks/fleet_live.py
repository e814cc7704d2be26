"""A fleet of two vLLM engines (the CPU build) against the simulated fleet (issue 25, §4).

Builds a shared-prefix trace (G system prompts x P questions, in a cycle), replays it on
two in-process engines (tiny Llama, random weights, block size 32, a fixed block count)
under round-robin, least-loaded and prefix, one router after another on the same
engines; fits a step-time profile on those three runs (`live calibrate`: in-sample);
simulates the same trace on a fleet of two replicas with each router and compares,
request by request. Prints per router: requests on the same replica, requests with the
same cached tokens, the live and simulated prefix hit rates, and the simulation's error
on mean latency and mean TTFT.

    python benchmarks/fleet_live.py --out runs/fleet_live
    python benchmarks/fleet_live.py --out DIR --skip-live   # re-simulate, re-compare
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
from pathlib import Path

from analysis.compare import compare_runs
from live.calibrate import calibrate
from live.engine import EngineOptions
from live.fleet import replay_on_new_fleet
from live.models import write_tiny_llama
from live.run import RunSpec, read_replay_trace
from ltrsched.cli import main as ltrsched_main
from traces.results import read_run

ROUTERS = ("round-robin", "least-loaded", "prefix")
NULL_BLOCKS = 1  # vLLM keeps block 0 as its null block


def build_trace(args, out: Path) -> Path:
    path = out / "trace_shared_prefix.parquet"
    with contextlib.redirect_stdout(io.StringIO()):
        rc = ltrsched_main(
            ["trace", "build", "--source", "shared-prefix", "-n", str(args.n),
             "--num-groups", "4", "--prompts-per-group", "4", "--system-prompt-len", "256",
             "--question-len", "64", "--output-len", "32", "--rate", str(args.rate),
             "--seed", "1", "-o", str(path)]
        )  # fmt: skip
    if rc != 0:
        raise SystemExit("trace build failed")
    return path


def limits(args) -> list[str]:
    return ["--max-num-seqs", "8", "--max-batched-tokens", "512", "--max-model-len", "1024",
            "--block-size", "32"]  # fmt: skip


def replay(args, out: Path, trace: Path) -> None:
    model = write_tiny_llama(out / "tiny")
    opts = EngineOptions(
        model=str(model), dummy_weights=True, max_num_seqs=8, max_num_batched_tokens=512,
        max_model_len=1024, block_size=32, num_gpu_blocks=args.blocks, enforce_eager=True,
        gpu_memory_utilization=0.05,
    )  # fmt: skip
    runs = [(RunSpec(policy="fcfs", out=out / "live" / r, trace=str(trace)), r) for r in ROUTERS]
    asyncio.run(replay_on_new_fleet(opts, 2, read_replay_trace(trace), runs, warmup=4))


def simulate(args, out: Path, trace: Path, profile: Path) -> bool:
    for r in ROUTERS:
        with contextlib.redirect_stdout(io.StringIO()):
            rc = ltrsched_main(
                ["simulate", "--trace", str(trace), "--profile", str(profile),
                 "--num-gpu-blocks", str(args.blocks - NULL_BLOCKS), "--prefix-caching",
                 "--replicas", "2", "--router", r, "--out", str(out / "sim" / r), *limits(args)]
            )  # fmt: skip
        if rc != 0:
            print(f"simulate --replicas 2 --router {r} failed (no simulated fleet here?)")
            return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("-n", type=int, default=60, help="requests")
    ap.add_argument("--rate", type=float, default=6.0, help="requests/s")
    ap.add_argument("--blocks", type=int, default=64, help="KV blocks per engine")
    ap.add_argument("--skip-live", action="store_true", help="reuse OUT/live")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    trace = build_trace(args, args.out)
    if not args.skip_live:
        replay(args, args.out, trace)
    profile = args.out / "profile.yaml"
    calibrate([args.out / "live" / r for r in ROUTERS], profile)
    simulated = simulate(args, args.out, trace, profile)
    print(f"{'router':<14}{'same replica':>14}{'same cached':>13}{'live hit':>10}"
          f"{'sim hit':>9}{'mean lat':>10}{'TTFT':>9}")  # fmt: skip
    for r in ROUTERS:
        _, _, live = read_run(args.out / "live" / r)
        if not simulated:
            print(f"{r:<14}{'-':>14}{'-':>13}{live['prefix_hit_rate']:>10.1%}")
            continue
        c = compare_runs(args.out / "sim" / r, args.out / "live" / r)
        _, _, sim = read_run(args.out / "sim" / r)
        f, err = c.fleet, {m["metric"]: m["rel_error"] for m in c.metrics}
        print(
            f"{r:<14}{f['same_replica']:>8}/{f['requests_routed_in_both']:<5}"
            f"{f['same_cached_tokens']:>7}/{f['requests_routed_in_both']:<5}"
            f"{live['prefix_hit_rate']:>10.1%}{sim['prefix_hit_rate']:>9.1%}"
            f"{err['mean_latency_s']:>+10.1%}{err['mean_ttft_s']:>+9.1%}"
        )


if __name__ == "__main__":  # vLLM's engines start subprocesses
    main()
