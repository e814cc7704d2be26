"""Mean latency by policy on a busy ShareGPT trace: does the order match theory and the paper?

Expected: srtf-oracle <= sjf-oracle < ltr (a real predictor's scores) < fcfs.

    python benchmarks/policy_order.py --trace scored.parquet      # a trace with a score_* column
    python benchmarks/policy_order.py                               # builds one (no ltr row)

Build a scored trace with `ltrsched trace build ... -o t.parquet` and
`ltrsched predictor score --model DIR --trace t.parquet -o scored.parquet`.
"""

from __future__ import annotations

import argparse

import pandas as pd
from rich.console import Console
from rich.table import Table

from sim.config import EngineConfig
from sim.run import simulate
from traces.build import build_trace
from traces.config import BuildConfig
from traces.io import read_trace
from traces.schema import SCORE_PREFIX


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trace", help="a trace; default: ShareGPT records 12000+ at --rate")
    ap.add_argument("--rate", type=float, default=64.0)
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--engine-mode", default="vllm-v1")
    args = ap.parse_args()
    if args.trace:
        df, _ = read_trace(args.trace)
        where = args.trace
    else:
        df = build_trace(BuildConfig(source="sharegpt", offset=12000, num_requests=args.n,
                                     rate=args.rate, seed=1, keep_text=False)).df
        where = f"ShareGPT records 12000+, {args.n} requests, Poisson {args.rate} req/s"
    scores = [c for c in df.columns if c.startswith(SCORE_PREFIX)]
    specs = ["srtf-oracle", "sjf-oracle"] + [f"ltr:col={c}" for c in scores] + [
        f"ltr:col={c},starvation=200,quantum=10" for c in scores] + [
        "approx-oracle:tau=0.5", "classify:buckets=10,width=820", "mlfq", "prompt-length",
        "fcfs"]
    rows = []
    for spec in specs:
        s = simulate(df, spec, config=EngineConfig(engine_mode=args.engine_mode)).summary
        rows.append((spec, s["mean_latency_s"], s["mean_norm_latency_s_per_token"],
                     s["p90_latency_s"], s["max_waiting_time_p99_s"]))
    res = pd.DataFrame(rows, columns=["policy", "mean", "per_token", "p90", "maxwait_p99"])
    t = Table(title=f"{where}; engine {args.engine_mode}; Llama-3-8B/H100 first-principles "
              "profile (an estimate, not a measurement)")
    for c in ("policy", "mean latency s", "s / output token", "p90 latency s",
              "max wait p99 s", "vs fcfs (mean)"):
        t.add_column(c, justify="left" if c == "policy" else "right")
    fcfs = res.set_index("policy").loc["fcfs", "mean"]
    for r in res.itertuples():
        t.add_row(r.policy, f"{r.mean:.2f}", f"{r.per_token:.4f}", f"{r.p90:.2f}",
                  f"{r.maxwait_p99:.2f}", f"{fcfs / r.mean:.2f}x")
    console = Console()
    console.print(t)
    m = res.set_index("policy")["mean"]
    checks = [("srtf-oracle <= sjf-oracle", m["srtf-oracle"] <= m["sjf-oracle"])]
    for c in scores:
        ltr = m[f"ltr:col={c}"]
        checks += [(f"sjf-oracle < ltr:col={c}", m["sjf-oracle"] < ltr),
                   (f"ltr:col={c} < fcfs", ltr < m["fcfs"])]
    if not scores:
        console.print("no score_* column in the trace: ltr not run (give --trace scored.parquet)")
    for name, ok in checks:
        console.print(f"{'PASS' if ok else 'FAIL'}  {name}")


if __name__ == "__main__":
    main()
