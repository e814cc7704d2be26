"""Sim-versus-live validation on the CPU build of vLLM (the targets of issue #6).

One engine (a tiny Llama, random weights) replays trace A (Poisson phases at rising
rates, so that its steps span the batch sizes) under FCFS and trace B (another seed, one
rate) and trace C (a burst of 100, then Poisson: queues form, so policies differ) under
FCFS, LTR with starvation prevention and SJF-oracle. The step-time profile is fitted on
A's FCFS run only; the simulator then predicts A itself and every B and C run, and each
prediction is compared with its live run. Prints the errors, the verdicts,
the noise floor (B under FCFS replayed twice), the policies' order live and simulated,
and the plug-in's time per step against the step time.

    python benchmarks/live_validate.py --out runs/live_validate
    python benchmarks/live_validate.py --out DIR --n 450 --rates-a 6,12,18 --rate-b 12
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

from analysis.compare import compare_runs
from live.calibrate import calibrate
from live.engine import EngineOptions, LiveEngine
from live.models import write_tiny_llama
from live.run import RunSpec
from ltrsched.cli import main as ltrsched_main
from traces.io import write_trace

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


async def replay_all(args, traces: dict[str, Path], out: Path) -> dict[str, Path]:
    model = write_tiny_llama(out / "tiny") if args.model is None else Path(args.model)
    engine = LiveEngine.start(EngineOptions(
        model=str(model), dummy_weights=True, enforce_eager=True,
        max_num_seqs=args.max_num_seqs, max_num_batched_tokens=args.max_batched_tokens))
    runs = {}
    try:
        await engine.warm_up(16)
        # B under FCFS twice: two live runs of one trace and policy give the noise floor.
        plan = [("A", "fcfs"), ("B", "fcfs"), ("B", "fcfs_repeat"), ("B", "ltr"), ("B", "sjf"),
                ("C", "fcfs"), ("C", "ltr"), ("C", "sjf")]
        for trace, key in plan:
            df = pd.read_parquet(traces[trace])
            run = out / "live" / f"{trace}_{key}"
            s = await engine.replay(df, RunSpec(policy=POLICIES[key.split("_")[0]], out=run,
                                                trace=str(traces[trace])))
            print(f"live {trace} {key}: mean {s['mean_latency_s']:.3f} s, p90 "
                  f"{s['p90_latency_s']:.3f} s, {s['throughput_tok_s']:.0f} tok/s, "
                  f"failed {s['failed']}", flush=True)
            runs[f"{trace}_{key}"] = run
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
    ap.add_argument("--max-num-seqs", type=int, default=4)
    ap.add_argument("--max-batched-tokens", type=int, default=512)
    args = ap.parse_args()
    out = args.out
    traces = {k: out / f"trace_{k.lower()}.parquet" for k in "ABC"}
    rates_a = [float(x) for x in args.rates_a.split(",")]
    write_trace(make_trace(args.n, rates_a, 1), traces["A"], {"source": "live_validate"})
    write_trace(make_trace(args.n, [args.rate_b], 2), traces["B"], {"source": "live_validate"})
    write_trace(make_trace(300, [args.rate_b], 3, burst=100), traces["C"],
                {"source": "live_validate"})
    runs = asyncio.run(replay_all(args, traces, out))
    profile = out / "profile_A_fcfs.yaml"
    prof = calibrate(runs["A_fcfs"], profile)
    print(f"profile from A_fcfs: {prof['coefficients']}, fit {prof['fit_error']}")
    results = {}
    plan = [("A", "fcfs", "trace A, fcfs (the calibration run itself)")] + [
        ("B", k, f"trace B, {POLICIES[k]}: simulated (profile from trace A, fcfs) vs live")
        for k in POLICIES] + [
        ("C", k, f"trace C (a burst of 100, then Poisson), {POLICIES[k]}") for k in POLICIES]
    for trace, key, title in plan:
        sim = out / "sim" / f"{trace}_{key}"
        with contextlib.redirect_stdout(io.StringIO()):
            ltrsched_main(["simulate", "--trace", str(traces[trace]), "--policy",
                           POLICIES[key], "--profile", str(profile), "--out", str(sim)])
        c = compare_runs(sim, runs[f"{trace}_{key}"])
        results[f"{trace}_{key}"] = c
        print(f"\n== {title}")
        for r in c.metrics:
            print(f"  {r['label']:<26} sim {r['sim']:9.4f}  live {r['live']:9.4f}  "
                  f"{r['rel_error']:+7.1%}")
        print(f"  {c.verdict}")
    floor = compare_runs(runs["B_fcfs_repeat"], runs["B_fcfs"])
    print("\n== noise floor: the same trace and policy live twice (B fcfs, repeat vs first)")
    for r in floor.metrics:
        print(f"  {r['label']:<26} {r['rel_error']:+7.1%}")
    for trace in "BC":
        live_mean = {k: results[f"{trace}_{k}"].metrics[0]["live"] for k in POLICIES}
        sim_mean = {k: results[f"{trace}_{k}"].metrics[0]["sim"] for k in POLICIES}
        print(f"\ntrace {trace}, policies by mean latency: live",
              sorted(live_mean, key=live_mean.get), {k: round(v, 3) for k, v in live_mean.items()},
              "| sim", sorted(sim_mean, key=sim_mean.get),
              {k: round(v, 3) for k, v in sim_mean.items()})
    for name, run in runs.items():
        o = json.loads((run / "summary.json").read_text()).get("plugin_overhead") or {}
        print(f"plug-in {name}: mean {o.get('mean_s', 0) * 1e6:.0f} us, p99 "
              f"{o.get('p99_s', 0) * 1e6:.0f} us per step; mean step "
              f"{o.get('mean_step_s', 0) * 1e3:.2f} ms; share {o.get('share_of_step_time', 0):.2%}")


if __name__ == "__main__":
    main()
