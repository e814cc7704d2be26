"""Sweep speed: runs per minute of `ltrsched sweep` on the local executor and on Ray,
against the same runs one by one in a plain loop, and whether all three give one dataset.

The grid is 200 small runs (synthetic traces of 5,000 requests, 5 rates x 8 policies x
5 seeds), so the loop takes a minute or two on a laptop core. Each mode
starts from an empty folder and includes building its traces. Prints a table.

    python benchmarks/sweep_speed.py                  # loop, local (all cores), ray
    python benchmarks/sweep_speed.py --workers 2 --no-ray
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from analysis.dataset import read_results
from analysis.executors import ExecutorOptions
from analysis.grid import expand
from analysis.spec import parse_spec
from analysis.sweep import run_sweep
from analysis.worker import WALL_COLUMNS, make_trace, run_one

SPEC = {
    "name": "sweep-speed",
    "trace": {
        "source": "synthetic",
        "num_requests": 5000,
        "prompt_dist": "lognormal:mu=5,sigma=1",
        "output_dist": "uniform:low=1,high=600",
        "rate": [10, 20, 30, 40, 60],
    },
    "policy": [
        "fcfs",
        "sjf-oracle",
        "srtf-oracle",
        "mlfq",
        "prompt-length",
        "classify:buckets=10,width=100",
        "approx-oracle:tau={tau},seed={seed}",
    ],
    "policy_params": {"tau": [0.3, 0.7]},
    "seeds": [0, 1, 2, 3, 4],
}


def loop(spec) -> tuple[float, pd.DataFrame]:
    """The same runs, one after another in this process, nothing written."""
    started = time.perf_counter()
    grid = expand(spec)
    traces = {tid: make_trace(task)[0] for tid, task in grid.traces.items()}
    rows = [run_one(task, traces[task.trace_id]).row for task in grid.runs]
    return time.perf_counter() - started, pd.DataFrame(rows)


def sweep(spec, executor: str, workers: int, root: Path) -> tuple[float, pd.DataFrame]:
    out = root / executor
    started = time.perf_counter()
    summary = run_sweep(spec, out, executor, ExecutorOptions(workers=workers))
    wall = time.perf_counter() - started
    assert summary.failed == 0, summary.failures[:3]
    return wall, read_results(out)


def comparable(df: pd.DataFrame) -> pd.DataFrame:
    df = df.drop(columns=[c for c in WALL_COLUMNS if c in df.columns]).infer_objects()
    return df[sorted(df.columns)].sort_values("run_id").reset_index(drop=True)


def same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    try:
        pd.testing.assert_frame_equal(comparable(a), comparable(b), check_dtype=False)
        return True
    except AssertionError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray run")
    args = ap.parse_args()
    spec = parse_spec(SPEC)
    runs = len(expand(spec).runs)
    results = [("loop (one by one)", 1, *loop(spec))]
    with tempfile.TemporaryDirectory() as tmp:
        results.append(
            ("local (process pool)", args.workers, *sweep(spec, "local", args.workers, Path(tmp)))
        )
        if not args.no_ray:
            results.append(
                ("ray (local instance)", args.workers, *sweep(spec, "ray", args.workers, Path(tmp)))
            )
    base_wall, base_df = results[0][2], results[0][3]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    table = Table(
        title=f"ltrsched sweep speed: {runs} runs, {os.cpu_count()} cores",
        caption=f"load average at the end (1, 5, 15 min): {load}; on a shared machine the "
        "walls say more about the neighbours than about the executors",
    )
    for col in ("executor", "workers", "wall s", "runs/min", "speed-up", "same dataset"):
        table.add_column(col, justify="right")
    for name, workers, wall, df in results:
        table.add_row(
            name,
            str(workers),
            f"{wall:.1f}",
            f"{60 * runs / wall:.0f}",
            f"{base_wall / wall:.2f}x",
            "-" if df is base_df else ("yes" if same(df, base_df) else "NO"),
        )
    Console().print(table)


if __name__ == "__main__":
    main()
