"""The in-server predictor's cost: the plug-in scores every request of a ShareGPT trace
(text prompts) itself, as `ltrsched serve --predictor` does, on the CPU build of vLLM
(tiny Llama given the predictor's tokenizer). Prints predictor time per step and per
request against the step time; then, for scale, against the service time the simulator
predicts for the same requests on its default profile (an 8B model on an H100).

    python benchmarks/serve_overhead.py --trace test.parquet --predictor DIR \
        --out runs/serve_overhead --n 300 --rate 4
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import numpy as np
import pandas as pd

from live.engine import EngineOptions, LiveEngine
from live.models import copy_tokenizer, write_tiny_llama
from live.run import RunSpec
from sim.run import simulate
from traces.io import read_trace

POLICY = "ltr:starvation=200,quantum=10"


def load(trace: Path, n: int, rate: float, seed: int) -> pd.DataFrame:
    df, _ = read_trace(trace)
    if "prompt" not in df.columns:
        raise SystemExit(f"{trace}: no prompt text; build it with `ltrsched trace build` (text)")
    df = df[[c for c in df.columns if not c.startswith(("score_", "dist_"))]]
    df = df[df["prompt_tokens"] <= 900].head(n).reset_index(drop=True)
    rng = np.random.default_rng(seed)
    df["arrival_s"] = np.cumsum(rng.exponential(1 / rate, len(df)))
    df["output_tokens"] = df["output_tokens"].clip(upper=128)  # keep the CPU run short
    df["request_id"] = np.arange(len(df))
    return df


async def replay(args, df: pd.DataFrame) -> Path:
    model = write_tiny_llama(args.out / "tiny")
    copy_tokenizer(args.predictor, model)
    engine = LiveEngine.start(EngineOptions(
        model=str(model), dummy_weights=True, enforce_eager=True, max_num_seqs=32,
        max_num_batched_tokens=2048, max_model_len=1024, predictor=str(args.predictor),
        predictor_device="cpu"))
    run = args.out / "ltr"
    try:
        await engine.warm_up(8)
        await engine.replay(df, RunSpec(policy=POLICY, out=run, stall_timeout_s=300,
                                        scored_in_server=True))
    finally:
        await engine.aclose()
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=Path, required=True)
    ap.add_argument("--predictor", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--rate", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    df = load(args.trace, args.n, args.rate, args.seed)
    run = asyncio.run(replay(args, df))
    steps = pd.read_parquet(run / "steps.parquet")
    scoring = steps[steps["scored_requests"] > 0]
    scored = int(steps["scored_requests"].sum())
    pred_s = float(steps["predictor_s"].sum())
    busy_s = float(steps["duration_s"].sum())
    rows = [
        ("requests scored", f"{scored} of {len(df)}"),
        ("steps / steps that scored", f"{len(steps)} / {len(scoring)}"),
        ("requests per scoring step (mean)", f"{scoring['scored_requests'].mean():.2f}"),
        ("predictor ms per request", f"{pred_s / max(scored, 1) * 1e3:.2f}"),
        ("predictor ms per scoring step (mean, p99)",
         f"{scoring['predictor_s'].mean() * 1e3:.2f}, "
         f"{np.percentile(scoring['predictor_s'], 99) * 1e3:.2f}"),
        ("step ms, all steps (mean)", f"{steps['duration_s'].mean() * 1e3:.2f}"),
        ("predictor share of engine busy time (tiny CPU model)", f"{pred_s / busy_s:.2%}"),
        ("plug-in policy share of engine busy time", f"{steps['plugin_s'].sum() / busy_s:.2%}"),
    ]
    sim = simulate(df, "fcfs")
    sim_busy = float(sim.steps["duration_s"].sum())
    rows.append(("simulated busy s per request (8B/H100 profile)",
                 f"{sim_busy / len(df) * 1e3:.2f} ms"))
    rows.append(("predictor time / simulated busy time", f"{pred_s / sim_busy:.2%}"))
    width = max(len(k) for k, _ in rows)
    print(f"\nin-server scoring, {args.predictor.name}, {len(df)} requests at {args.rate}/s")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
