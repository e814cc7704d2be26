"""Sim-versus-live validation on the CPU build of vLLM (the targets of issue #6).

One engine (a tiny Llama, random weights) replays trace A (a burst of 40, then Poisson
phases at rising rates, so that its steps span prefill chunks and batch sizes) under
FCFS, trace B (another seed, one rate) and trace C (a burst: every request at t=0, the
paper's burst experiment) under FCFS, LTR with starvation prevention and SJF-oracle.
Each (trace, policy) is replayed --repeats times, in rounds, so that the machine's
drift spreads evenly over the cases. The step-time profile is fitted on A's FCFS
replicates only (pooled); the simulator then predicts A itself and every B and C case,
and each prediction is compared with the mean of that case's live replicates
(`ltrsched compare --live R1 --live R2 ...`). Prints the errors, the verdicts, the
replicates' own spread (the noise floor: the same trace and policy, live, again), the
policies' order live and simulated, and the plug-in's time per step.

    python benchmarks/live_validate.py --out runs/live_validate
    python benchmarks/live_validate.py --out DIR --repeats 1 --n 450 --rates-a 6,12,18
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from analysis.compare import compare_runs, format_table
from live.calibrate import calibrate
from live.engine import EngineOptions, LiveEngine
from live.models import write_tiny_llama
from live.run import RunSpec
from ltrsched.cli import main as ltrsched_main
from sim.profile import load_profile
from traces.io import atomic_write, write_trace

POLICIES = {"fcfs": "fcfs", "ltr": "ltr:starvation=200,quantum=10", "sjf": "sjf-oracle"}


def make_trace(n: int, rates: list[float], seed: int, burst: int = 0) -> pd.DataFrame:
    """Short chat-like requests: prompts 16-256, outputs 4-128 tokens, a noisy score;
    Poisson arrivals, in equal phases at each of `rates` (a ramp spans the batch sizes
    a profile must cover)."""
    rng = np.random.default_rng(seed)
    out = rng.integers(4, 129, n)
    phase = np.minimum(np.arange(n) * len(rates) // n, len(rates) - 1)
    gaps = rng.exponential(1.0, n) / np.asarray(rates, dtype=float)[phase]
    gaps[:burst] = 0.0  # the first `burst` requests arrive together at t=0
    return pd.DataFrame({
        "request_id": np.arange(n),
        "arrival_s": np.cumsum(gaps),
        "prompt_tokens": rng.integers(16, 257, n),
        "output_tokens": out,
        "score_len": -out + rng.normal(0, 15, n),
    })


def step_time_ratio(run: Path, profile: Path) -> float:
    """How much slower the machine ran than the profile says: the run's summed step
    durations over the profile's prediction for the very same steps (1.0 = on profile)."""
    st = pd.read_parquet(run / "steps.parquet")
    st = st[st["scheduled_requests"] > 0]
    pred = load_profile(str(profile)).step_time(
        st["prefill_tokens"], st["prefill_sq_tokens"], st["decode_requests"],
        st["decode_context_tokens"])
    return float(st["duration_s"].sum() / pred.sum())


def speed_corrected(trace: Path, policy: str, profile: Path, run: Path, out: Path):
    """The simulation of one live replicate with the profile's times scaled by that run's
    step_time_ratio: what is left of the error once the machine's drift is known."""
    ratio = step_time_ratio(run, profile)
    prof = yaml.safe_load(profile.read_text())
    prof["coefficients"] = {k: v * ratio for k, v in prof["coefficients"].items()}
    scaled = out / "profiles" / f"{run.name}.yaml"
    atomic_write(scaled, lambda tmp: Path(tmp).write_text(yaml.safe_dump(prof, sort_keys=False)))
    sim = out / "sim_corrected" / run.name
    with contextlib.redirect_stdout(io.StringIO()):
        ltrsched_main(["simulate", "--trace", str(trace), "--policy", policy, "--profile",
                       str(scaled), "--out", str(sim)])
    return ratio, compare_runs(sim, run)


# (trace, policy key) in each round; A under FCFS is the calibration run.
PLAN = [("A", "fcfs"), ("B", "fcfs"), ("B", "ltr"), ("B", "sjf"), ("C", "fcfs"), ("C", "ltr"),
        ("C", "sjf")]


async def replay_all(args, traces: dict[str, Path], out: Path) -> dict[str, list[Path]]:
    model = write_tiny_llama(out / "tiny") if args.model is None else Path(args.model)
    engine = LiveEngine.start(EngineOptions(
        model=str(model), dummy_weights=True, enforce_eager=True,
        max_num_seqs=args.max_num_seqs, max_num_batched_tokens=args.max_batched_tokens))
    runs: dict[str, list[Path]] = {f"{t}_{k}": [] for t, k in PLAN}
    try:
        await engine.warm_up(16)
        frames = {name: pd.read_parquet(path) for name, path in traces.items()}
        for rep in range(args.repeats):
            for trace, key in PLAN:
                df = frames[trace]
                run = out / "live" / f"{trace}_{key}_r{rep}"
                s = await engine.replay(df, RunSpec(policy=POLICIES[key], out=run,
                                                    trace=str(traces[trace])))
                print(f"live {trace} {key} (round {rep + 1}): mean {s['mean_latency_s']:.3f} s, "
                      f"p90 {s['p90_latency_s']:.3f} s, {s['throughput_tok_s']:.0f} tok/s, "
                      f"failed {s['failed']}", flush=True)
                runs[f"{trace}_{key}"].append(run)
    finally:
        await engine.aclose()
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--model", help="model directory (default: a tiny Llama, written to --out)")
    ap.add_argument("--n", type=int, default=450)
    ap.add_argument("--rates-a", default="6,12,18",
                    help="calibration trace: Poisson phases at these rates (req/s)")
    ap.add_argument("--rate-b", type=float, default=12.0)
    ap.add_argument("--burst-c", type=int, default=200, help="requests in trace C, all at t=0")
    ap.add_argument("--repeats", type=int, default=3,
                    help="live replicates of each (trace, policy); the simulator is compared "
                    "with their mean")
    ap.add_argument("--max-num-seqs", type=int, default=4)
    ap.add_argument("--max-batched-tokens", type=int, default=512)
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    out = args.out
    traces = {k: out / f"trace_{k.lower()}.parquet" for k in "ABC"}
    rates_a = [float(x) for x in args.rates_a.split(",")]
    write_trace(make_trace(args.n, rates_a, 1, burst=40), traces["A"],
                {"source": "live_validate"})
    write_trace(make_trace(args.n, [args.rate_b], 2), traces["B"], {"source": "live_validate"})
    write_trace(make_trace(args.burst_c, [args.rate_b], 3, burst=args.burst_c), traces["C"],
                {"source": "live_validate"})
    runs = asyncio.run(replay_all(args, traces, out))
    profile = out / "profile_A_fcfs.yaml"
    prof = calibrate(runs["A_fcfs"], profile)
    print(f"profile from {len(runs['A_fcfs'])} run(s) of A under fcfs: "
          f"{prof['coefficients']}, fit {prof['fit_error']}")
    titles = {"A": "trace A (the calibration runs themselves)",
              "B": "trace B (other seed, {rate} req/s)", "C": "trace C (a burst of {n} at t=0)"}
    results = {}
    for trace, key in PLAN:
        sim = out / "sim" / f"{trace}_{key}"
        with contextlib.redirect_stdout(io.StringIO()):
            ltrsched_main(["simulate", "--trace", str(traces[trace]), "--policy",
                           POLICIES[key], "--profile", str(profile), "--out", str(sim)])
        c = compare_runs(sim, runs[f"{trace}_{key}"])
        results[f"{trace}_{key}"] = c
        title = titles[trace].format(rate=args.rate_b, n=args.burst_c)
        print(f"\n== {title}, {POLICIES[key]}: simulated (profile from A, fcfs) vs live")
        print("\n".join("  " + line for line in format_table(c).splitlines()))
    print(f"\n== summary: error of the simulation against the mean of {args.repeats} live "
          "run(s); spread = the live runs' own (max - min) / mean; step-time ratio = each "
          "live run's step time over the profile's for the same steps (the machine's "
          "drift); corrected = the mean error over the replicates when each is simulated "
          "with the profile scaled by its own ratio (the error left once the drift is known)")
    print(f"  {'case':<10}{'mean':>8}{'p90':>8}{'tok/s':>8}{'spread mean':>13}"
          f"{'spread p90':>12}  verdict  {'step-time ratio':<19}{'corrected mean':>15}"
          f"{'p90':>8}")
    for name, c in results.items():
        by = {r["metric"]: r["rel_error"] for r in c.metrics}
        sp = c.live_spread
        trace, key = name.split("_")
        fixes = [speed_corrected(traces[trace], POLICIES[key], profile, run, out)
                 for run in runs[name]]
        ratios = [r for r, _ in fixes]
        fixed = [{m["metric"]: m["rel_error"] for m in f.metrics} for _, f in fixes]
        print(f"  {name:<10}{by['mean_latency_s']:+8.1%}{by['p90_latency_s']:+8.1%}"
              f"{by['throughput_tok_s']:+8.1%}{sp.get('mean_latency_s', 0):13.1%}"
              f"{sp.get('p90_latency_s', 0):12.1%}  {'PASS' if c.passed else 'FAIL':<7}  "
              f"{min(ratios):.3f}-{max(ratios):.3f}{'':<8}"
              f"{np.mean([f['mean_latency_s'] for f in fixed]):+15.1%}"
              f"{np.mean([f['p90_latency_s'] for f in fixed]):+8.1%}")
    for trace in "BC":
        live_mean = {k: results[f"{trace}_{k}"].metrics[0]["live"] for k in POLICIES}
        sim_mean = {k: results[f"{trace}_{k}"].metrics[0]["sim"] for k in POLICIES}
        print(f"\ntrace {trace}, policies by mean latency: live",
              sorted(live_mean, key=live_mean.get), {k: round(v, 3) for k, v in live_mean.items()},
              "| sim", sorted(sim_mean, key=sim_mean.get),
              {k: round(v, 3) for k, v in sim_mean.items()})
    for name, case_runs in runs.items():
        o = [json.loads((r / "summary.json").read_text()).get("plugin_overhead") or {}
             for r in case_runs]
        mean_us = np.mean([x.get("mean_s", 0) for x in o]) * 1e6
        step_ms = np.mean([x.get("mean_step_s", 0) for x in o]) * 1e3
        share = np.mean([x.get("share_of_step_time", 0) for x in o])
        print(f"plug-in {name}: mean {mean_us:.0f} us per step; mean step {step_ms:.2f} ms; "
              f"share {share:.2%}")


if __name__ == "__main__":
    main()
