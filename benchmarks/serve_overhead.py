"""The in-server predictor's cost: the plug-in scores every request of a ShareGPT trace
(text prompts) itself, as `ltrsched serve --predictor` does, on the CPU build of vLLM
(tiny Llama given the predictor's tokenizer), in its two modes (sync: before each step
is ordered; overlap: in a thread while the model runs), against the same trace with the
same predictor's scores computed beforehand and sent with the requests. Prints, side by
side, predictor time per request and per step against the step time, and the latency
each run got; then, for scale, the predictor's time against the service time the
simulator predicts for the same requests on its default profile (an 8B model, H100).

    python benchmarks/serve_overhead.py --trace test.parquet --predictor DIR \
        --out runs/serve_overhead --n 300 --rate 4
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import numpy as np
import pandas as pd

from live.engine import EngineOptions, replay_on_new_engine
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


async def replay(args, df: pd.DataFrame, mode: str | None) -> Path:
    """One engine: with the predictor in `mode`, or (None) without it, df scored."""
    model = write_tiny_llama(args.out / "tiny")
    copy_tokenizer(args.predictor, model)
    run = args.out / (mode or "precomputed")
    await replay_on_new_engine(
        EngineOptions(model=str(model), dummy_weights=True, enforce_eager=True, max_num_seqs=32,
                      max_num_batched_tokens=2048, max_model_len=1024,
                      predictor=str(args.predictor) if mode else None, predictor_device="cpu",
                      predictor_mode=mode or "overlap"),
        df, [RunSpec(policy=POLICY, out=run, stall_timeout_s=300,
                     scored_in_server=mode is not None)])
    return run


def precomputed(args, df: pd.DataFrame) -> pd.DataFrame:
    from predictor.checkpoint import load_predictor
    from predictor.scoring import score_prompts

    scored = df.copy()
    scored["score_pre"] = score_prompts(load_predictor(args.predictor), df["prompt"].tolist())
    return scored


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
    runs = {"precomputed": asyncio.run(replay(args, precomputed(args, df), None))}
    for mode in ("sync", "overlap"):
        runs[mode] = asyncio.run(replay(args, df, mode))
    table = {}
    for name, run in runs.items():
        steps = pd.read_parquet(run / "steps.parquet")
        reqs = pd.read_parquet(run / "requests.parquet")
        scoring = steps[steps["scored_requests"] > 0]
        scored = int(steps["scored_requests"].sum())
        busy_s = float(steps["duration_s"].sum())
        table[name] = {
            "requests scored in the server": scored,
            "predictor compute ms / request": steps["predictor_batch_s"].sum()
            / max(scored, 1) * 1e3,
            "schedule() ms on scoring / scoring step": scoring["predictor_s"].mean() * 1e3
            if scored else 0.0,
            "scoring share of engine busy time": steps["predictor_s"].sum() / busy_s,
            "plug-in policy share of busy time": steps["plugin_s"].sum() / busy_s,
            "step ms (mean)": steps["duration_s"].mean() * 1e3,
            "mean latency s": reqs["latency_s"].mean(),
            "mean TTFT s": reqs["ttft_s"].mean(),
            "throughput tok/s": reqs["output_tokens"].sum()
            / (reqs["finish_s"].max() - reqs["arrival_s"].min()),
        }
    out = pd.DataFrame(table)
    print(f"\nin-server scoring, {args.predictor.name}, {len(df)} ShareGPT requests at "
          f"{args.rate}/s, policy {POLICY}")
    print(out.to_string(float_format=lambda x: f"{x:.4g}"))
    sim_busy = float(simulate(df, "fcfs").steps["duration_s"].sum())
    per_req = table["sync"]["predictor compute ms / request"]
    print(f"\nfor scale: simulated busy time per request on the default profile "
          f"{sim_busy / len(df) * 1e3:.1f} ms; the predictor's {per_req:.1f} ms per request "
          f"(this CPU) is {per_req / (sim_busy / len(df) * 1e3):.1%} of it")


if __name__ == "__main__":
    main()
