"""Length distributions against one score, in the simulator, at a saturating rate: fcfs,
ltr (a ranking score), serpt and gittins (a predicted distribution), the oracle's own
family with noisy parameters (to split the value of the rule from that of the
predictor), sjf-oracle and srtf-oracle; each with starvation prevention off and on.
Prints mean and p99 latency per output token and the longest wait, and each policy's
mean against ltr's.

    python benchmarks/gittins_table.py --trace test-scored.parquet --score score_rank \
        --dist nll --rate 48 -n 2000 [--oracle-noise 0 0.5 1.0] [--csv out.csv]

The trace needs the ranking score column and dist_<name>_NN columns (`ltrsched
predictor score` with a listmle and an nll model); the arrivals are redrawn as a
Poisson process at --rate so that a burst-built test trace can be used.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from policies.lengthdist import dist_names
from policies.oracle_dist import oracle_dist
from sim.config import EngineConfig
from sim.run import simulate
from traces.io import read_trace

STARVE = "starvation=200,quantum=10"


def policies(score: str, dist: str, oracle: list[str]) -> list[tuple[str, str]]:
    """(label, spec) pairs, each without and with starvation prevention."""
    base = [("fcfs", "fcfs"), ("ltr", f"ltr:col={score}"), ("serpt", f"serpt:dist={dist}"),
            ("gittins", f"gittins:dist={dist}")]
    for name in oracle:
        base += [(f"serpt[{name}]", f"serpt:dist={name}"),
                 (f"gittins[{name}]", f"gittins:dist={name}")]
    base += [("sjf-oracle", "sjf-oracle"), ("srtf-oracle", "srtf-oracle")]
    out = []
    for label, spec in base:
        out.append((label, spec))
        if label != "fcfs":
            out.append((f"{label} +starve", f"{spec},{STARVE}" if ":" in spec
                        else f"{spec}:{STARVE}"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=Path, required=True)
    ap.add_argument("--score", required=True, help="ranking score column for ltr")
    ap.add_argument("--dist", required=True, help="predicted distribution name (dist_<name>_NN)")
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--oracle-noise", type=float, nargs="*", default=[0.0, 0.5])
    ap.add_argument("--profile", default=None)
    ap.add_argument("--preemption", default=None, choices=["recompute", "swap"],
                    help="default: the engine mode's own (vllm-v1: recompute; ltr-paper: swap)")
    ap.add_argument("--engine-mode", default="vllm-v1", choices=["vllm-v1", "ltr-paper"],
                    help="ltr-paper re-sorts running requests every step and preempts by rank, "
                    "where a request's age can change its place")
    ap.add_argument("--csv", type=Path)
    args = ap.parse_args()

    df, _ = read_trace(args.trace)
    if args.score not in df.columns:
        raise SystemExit(f"{args.trace}: no column {args.score}")
    if args.dist not in dist_names(list(df.columns)):
        raise SystemExit(f"{args.trace}: no distribution {args.dist} "
                         f"(has: {', '.join(dist_names(list(df.columns))) or 'none'})")
    df = df.head(args.n).reset_index(drop=True)
    rng = np.random.default_rng(args.seed)
    df["arrival_s"] = np.cumsum(rng.exponential(1 / args.rate, len(df)))
    df["request_id"] = np.arange(len(df))
    oracle = []
    for i, noise in enumerate(args.oracle_noise):
        name = f"oracle{i}"
        df, _ = oracle_dist(df, name=name, noise=noise, seed=args.seed + i)
        oracle.append(name)
    df = df.drop(columns=[c for c in df.columns if c.startswith("score_oracle")])

    config = EngineConfig(engine_mode=args.engine_mode,
                          **({"preemption": args.preemption} if args.preemption else {}))
    rows = []
    for label, spec in policies(args.score, args.dist, oracle):
        t = time.perf_counter()
        res = simulate(df, spec, args.profile, config)
        r = res.requests
        done = r[r["status"] == "finished"]
        rows.append({
            "policy": label,
            "mean s/token": done["norm_latency_s_per_token"].mean(),
            "p99 s/token": np.percentile(done["norm_latency_s_per_token"], 99),
            "mean latency s": done["latency_s"].mean(),
            "max wait s": done["max_waiting_s"].max(),
            "finished": f"{len(done)}/{len(r)}",
            "sim s": time.perf_counter() - t,
        })
    table = pd.DataFrame(rows).set_index("policy")
    ltr = table.loc["ltr", "mean s/token"]
    table["ltr / this (mean)"] = ltr / table["mean s/token"]
    noises = ", ".join(f"oracle{i}: noise {x}" for i, x in enumerate(args.oracle_noise))
    print(f"\n{args.trace.name}: {len(df)} requests at {args.rate}/s, engine "
          f"{args.engine_mode}, preemption {config.preemption}, profile "
          f"{args.profile or 'default'}; {noises}")
    print(table.to_string(float_format=lambda x: f"{x:.4g}"))
    if args.csv:
        table.to_csv(args.csv)


if __name__ == "__main__":
    main()
