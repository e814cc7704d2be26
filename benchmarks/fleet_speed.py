"""How fast a simulated fleet runs: whole-process time and peak memory per fleet size.

Each case is a fresh process (`/usr/bin/time -v` when present, for the peak resident
memory) that builds a synthetic trace (Poisson arrivals at `rate` per replica, ShareGPT-
like lengths), simulates it under FCFS on the default profile behind round-robin, and
reports the simulator's own time. Prints one table row per case.

    python benchmarks/fleet_speed.py                       # 100k on 1 and 4, 1M on 16
    python benchmarks/fleet_speed.py --case 100000x4       # one case
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

DEFAULT_CASES = ("100000x1", "100000x4", "1000000x16")


def one_run(requests: int, replicas: int, rate_per_replica: float, seed: int) -> dict:
    import numpy as np
    import pandas as pd

    from policies.routing import make_router
    from sim.config import EngineConfig
    from sim.run import simulate

    rng = np.random.default_rng(seed)
    rate = rate_per_replica * replicas
    df = pd.DataFrame(
        {
            "request_id": np.arange(requests),
            "arrival_s": np.cumsum(rng.exponential(1 / rate, requests)),
            "prompt_tokens": np.clip(rng.lognormal(5.0, 1.0, requests), 4, 4000).astype(int),
            "output_tokens": np.clip(rng.lognormal(5.3, 0.8, requests), 1, 2000).astype(int),
        }
    )
    t0 = time.perf_counter()
    res = simulate(
        df,
        "fcfs",
        None,
        EngineConfig(),
        replicas=replicas,
        router=make_router("round-robin") if replicas > 1 else None,
    )
    s = res.summary
    return {
        "sim_wall_s": s["sim_wall_s"],
        "simulate_s": time.perf_counter() - t0,
        "steps": s["steps"],
        "completed": s["completed"],
        "mean_latency_s": s["mean_latency_s"],
    }


def measure(case: str, rate: float, seed: int) -> dict:
    n, r = (int(x) for x in case.split("x"))
    cmd = [sys.executable, __file__, "--child", case, "--rate", str(rate), "--seed", str(seed)]
    timer = shutil.which("time") and os.path.exists("/usr/bin/time")
    if timer:
        cmd = ["/usr/bin/time", "-v", *cmd]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"case {case} failed:\n{p.stderr[-2000:]}")
    row = json.loads(p.stdout.strip().splitlines()[-1])
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    row.update(
        requests=n,
        replicas=r,
        process_s=wall,
        peak_rss_mib=int(m.group(1)) / 1024 if m else float("nan"),
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", help="REQUESTSxREPLICAS (repeatable)")
    ap.add_argument("--rate", type=float, default=30.0, help="requests/s per replica [30]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        n, r = (int(x) for x in a.child.split("x"))
        print(json.dumps(one_run(n, r, a.rate, a.seed)))
        return
    print(
        f"{'requests':>9} {'replicas':>8} {'process s':>9} {'sim s':>8} {'steps':>10} "
        f"{'peak MiB':>9} {'mean lat s':>10}"
    )
    for case in a.case or DEFAULT_CASES:
        row = measure(case, a.rate, a.seed)
        print(
            f"{row['requests']:9d} {row['replicas']:8d} {row['process_s']:9.1f} "
            f"{row['sim_wall_s']:8.1f} {row['steps']:10d} {row['peak_rss_mib']:9.0f} "
            f"{row['mean_latency_s']:10.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
