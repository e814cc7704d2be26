"""Simulator speed: the targets of the speed issue (#27) as one table, then simulated
requests per wall second, fast mode against step-by-step, and the prefix cache's cost.

    python benchmarks/sim_speed.py                 # everything (several minutes on 2 cores)
    python benchmarks/sim_speed.py --sizes 1000 --rate 30 --no-targets
    python benchmarks/sim_speed.py --blis "blis run --model ... --workload ..."  # side by side

The targets table runs `ltrsched` as users do, a whole process each (best of three wall
seconds, and the CPU seconds of that run, which a loaded machine inflates less): its start-up
(`simulate --help`, a 20-request simulate), the 100k-request synthetic trace of the issue
(engine seconds from its summary), one public sim-to-real run (benchmarks/sim_to_real.py,
engine seconds) and a 16,800-request run of the sim-to-real shape (Llama-3.1-8B on H100,
8 then 20 req/s for 600 s each, 575 prompt and 248 output tokens, shared prefixes), beside
BLIS when --blis gives its command line, and the same 100k requests at 4x the rate over 4
replicas (round-robin) against one replica.

The second table builds a ShareGPT length sample from the bundled dataset (cl100k counts),
resamples it to N requests with Poisson arrivals at a rate that keeps the modelled server
busy, and runs both engine modes on the same trace in one process. The third runs each
size's trace with its prompts' hash_ids (so a resampled prompt hits the blocks of its
earlier copies) against the same trace without them, prefix caching on in both (vLLM V1's
default): the cost of the prefix cache's bookkeeping, as a ratio of engine seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from sim.config import EngineConfig
from sim.run import simulate
from traces.build import build_trace
from traces.config import BuildConfig

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC_100K = [
    "--source",
    "synthetic",
    "-n",
    "100000",
    "--rate",
    "40",
    "--seed",
    "3",
    "--prompt-dist",
    "lognormal:mu=5,sigma=1",
    "--output-dist",
    "lognormal:mu=5,sigma=1",
]
# The sim-to-real shape at 16,800 requests: 10 system prompts x 10 questions, 8 then 20
# req/s for 600 s each, 100 + 475 prompt tokens, 248 output tokens.
SHARED_16800 = [
    "--source",
    "shared-prefix",
    "--num-groups",
    "10",
    "--prompts-per-group",
    "10",
    "--system-prompt-len",
    "100",
    "--question-len",
    "475",
    "--output-len",
    "248",
    "--stages",
    "8x600,20x600",
    "--seed",
    "0",
]
SIM_TO_REAL_RUN = "61"  # Llama-3.1-70B, TP 4, codegen: 9,000 requests


def ltrsched(*argv: str) -> tuple[float, float, str]:
    """Run `ltrsched ARGV` as a fresh process of this checkout: (wall s, CPU s, stdout)."""
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    return timed([sys.executable, "-m", "ltrsched.cli", *argv], env)


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()[-300:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, p.stdout


def best_of(runs: int, *argv: str) -> tuple[float, float, dict | None]:
    """Best wall seconds of `runs` runs, that run's CPU seconds and its --json summary."""
    best = (float("inf"), 0.0, None)
    for _ in range(runs):
        wall, cpu, out = ltrsched(*argv)
        if wall < best[0]:
            best = (wall, cpu, json.loads(out) if "--json" in argv else None)
    return best


def target_rows(work: Path, repeats: int, blis: str | None, prefix_ratio: str) -> list[list[str]]:
    """(measure, wall s, CPU s, target, met) rows of the issue's table."""
    rows = []

    def row(what, wall, cpu, target, met):
        rows.append([what, wall, cpu, target, "yes" if met else "NO"])

    wall, cpu, _ = best_of(repeats, "simulate", "--help")
    row("start-up: simulate --help", f"{wall:.2f}", f"{cpu:.2f}", "< 0.5 s", wall < 0.5)
    tiny, big, shared = work / "tiny.parquet", work / "100k.parquet", work / "16800.parquet"
    small = [*SYNTHETIC_100K[:2], "-n", "20", *SYNTHETIC_100K[4:]]
    ltrsched("trace", "build", *small, "-o", str(tiny))
    wall, cpu, _ = best_of(repeats, "simulate", "--trace", str(tiny), "--json")
    row("start-up: simulate 20 requests", f"{wall:.2f}", f"{cpu:.2f}", "< 0.5 s", wall < 0.5)
    ltrsched("trace", "build", *SYNTHETIC_100K, "-o", str(big))
    wall, cpu, summary = best_of(
        repeats, "simulate", "--trace", str(big), "--policy", "fcfs", "--json"
    )
    row("100k synthetic: whole process", f"{wall:.2f}", f"{cpu:.2f}", "< 3 s", wall < 3.0)
    one_replica_wall = wall
    engine = summary["sim_wall_s"]
    row("100k synthetic: engine", f"{engine:.2f}", "-", "<= 2 s", engine <= 2.0)
    rows.append(
        [
            "ShareGPT hash_ids / none: engine",
            prefix_ratio,
            "-",
            "<= 1.3x",
            "yes" if prefix_ratio != "-" and float(prefix_ratio[:-1]) <= 1.3 else "NO",
        ]
    )
    engine = sim_to_real_engine_s(work)
    row(f"sim-to-real run {SIM_TO_REAL_RUN}: engine", f"{engine:.2f}", "-", "< 1 s", engine < 1.0)
    profile = work / "llama-3.1-8b-h100.yaml"
    ltrsched(
        "profile", "roofline", "--model", "llama-3.1-8b", "--gpu", "H100-SXM", "-o", str(profile)
    )
    ltrsched("trace", "build", *SHARED_16800, "-o", str(shared))
    wall, cpu, _ = best_of(
        repeats, "simulate", "--trace", str(shared), "--profile", str(profile), "--json"
    )
    if blis:
        b_wall = min(timed(shlex.split(blis))[0] for _ in range(repeats))
        row(
            "16,800 requests: whole process",
            f"{wall:.2f}",
            f"{cpu:.2f}",
            f">= 2x faster than BLIS ({b_wall:.2f} s)",
            b_wall >= 2 * wall,
        )
    else:
        note = "BLIS on PATH: give --blis" if shutil.which("blis") else "no BLIS to compare"
        rows.append(
            [
                "16,800 requests: whole process",
                f"{wall:.2f}",
                f"{cpu:.2f}",
                f">= 2x faster than BLIS ({note})",
                "-",
            ]
        )
    # The same 100k requests at 4x the rate over 4 replicas (round-robin): each replica sees
    # the one-replica load, so a fleet should cost about what one server does per request.
    fleet = work / "100k-x4.parquet"
    x4 = [*SYNTHETIC_100K]
    x4[x4.index("--rate") + 1] = str(4 * float(x4[x4.index("--rate") + 1]))
    ltrsched("trace", "build", *x4, "-o", str(fleet))
    wall, cpu, _ = best_of(
        repeats,
        "simulate",
        "--trace",
        str(fleet),
        "--policy",
        "fcfs",
        "--replicas",
        "4",
        "--router",
        "round-robin",
        "--json",
    )
    ratio = wall / one_replica_wall
    row(
        "fleets: 100k over 4 replicas / 1",
        f"{ratio:.2f}x ({wall:.2f} s)",
        f"{cpu:.2f}",
        "<= 1.3x",
        ratio <= 1.3,
    )
    return rows


def sim_to_real_engine_s(work: Path) -> float:
    """Engine seconds of one public sim-to-real run, as benchmarks/sim_to_real.py runs it."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import sim_to_real as s2r

    (exp,) = s2r.select(s2r.read_experiments(), [SIM_TO_REAL_RUN])
    profile = s2r.make_profile(exp, work / "s2r-profile.yaml")
    trace = s2r.build_trace(exp, 0, work / "s2r.parquet")
    return s2r.simulate_run(exp, trace, profile)["engine_s"]


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
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    ap.add_argument(
        "--rate",
        type=float,
        default=40.0,
        help="req/s (the default keeps the Llama-3-8B/H100 first-principles server busy)",
    )
    ap.add_argument("--policy", default="fcfs")
    ap.add_argument(
        "--slow-max", type=int, default=10_000, help="largest size also run step by step"
    )
    ap.add_argument("--no-targets", action="store_true", help="skip the issue's table")
    ap.add_argument("--repeats", type=int, default=3, help="whole-process runs, best taken")
    ap.add_argument(
        "--blis", help="a BLIS command line for the 16,800-request run, timed side by side"
    )
    args = ap.parse_args()
    lengths = sharegpt_lengths()
    table = Table(
        title=f"ltrsched simulate speed, ShareGPT lengths, {args.rate} req/s, "
        f"policy {args.policy}, Llama-3-8B/H100 first-principles profile"
    )
    for col in (
        "requests",
        "steps",
        "fast wall s",
        "fast req/s",
        "step-by-step wall s",
        "step-by-step req/s",
        "speed-up",
        "identical",
    ):
        table.add_column(col, justify="right")
    prefix = Table(title="prefix caching on: the same trace with and without hash_ids")
    for col in (
        "requests",
        "no hash_ids: engine s",
        "hash_ids: engine s",
        "ratio",
        "prefix hit rate",
        "blocks evicted",
    ):
        prefix.add_column(col, justify="right")
    ratio = "-"
    for n in args.sizes:
        with_ids = resampled(lengths, n, args.rate)
        t_plain = simulate(with_ids.drop(columns="hash_ids")).summary["sim_wall_s"]
        res = simulate(with_ids, hash_block_tokens=16)
        t_ids = res.summary["sim_wall_s"]
        ratio = f"{t_ids / t_plain:.2f}x"
        prefix.add_row(
            f"{n:,}",
            f"{t_plain:.2f}",
            f"{t_ids:.2f}",
            ratio,
            f"{res.summary['prefix_hit_rate']:.1%}",
            f"{res.summary['prefix_blocks_evicted']:,}",
        )
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
        Console().print(
            f"  {n:,} requests: mean latency {fast.summary['mean_latency_s']:.2f} s,"
            f" throughput {fast.summary['throughput_req_s']:.1f} req/s, "
            f"{fast.summary['preemptions']} preemptions"
        )
    if not args.no_targets:
        targets = Table(
            title=f"speed targets (issue 27), {os.cpu_count()} cores; ratios and "
            "times from this one run"
        )
        for col in ("measure", "wall s", "CPU s", "target", "met"):
            targets.add_column(col, justify="left" if col == "measure" else "right")
        with tempfile.TemporaryDirectory() as tmp:
            prefix_at = f"{ratio} ({args.sizes[-1]:,} req)" if ratio != "-" else "-"
            for r in target_rows(Path(tmp), args.repeats, args.blis, ratio):
                targets.add_row(*r)
        Console(width=120).print(targets)
        Console().print(f"  hash_ids ratio above: {prefix_at}")
    Console().print(table)
    Console().print(prefix)


if __name__ == "__main__":
    main()
