"""`ltrsched sweep SPEC.yaml --out DIR`: run a grid of simulations into one Parquet dataset.

The spec format is in analysis/spec.py (examples/ has worked specs). Results land in
DIR/results/part-<run_id>.parquet as runs finish; the same command again resumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from analysis.executors import ExecutorOptions, executor_names

Opt = typer.Option

# Where a grid of runs executes: shared by `ltrsched sweep` and `ltrsched paper`.
ExecutorOpt = Annotated[str, Opt(help=f"Where runs execute: {', '.join(executor_names())}.")]
WorkersOpt = Annotated[
    int | None, Opt(help="Worker processes (local) or CPUs (local Ray); default: all cores.")
]
RayAddressOpt = Annotated[
    str | None,
    Opt(help="Ray cluster address (ray://host:10001 or auto); none starts Ray on this machine."),
]


def sweep(
    spec: Annotated[Path, typer.Argument(help="Sweep spec (YAML); see examples/.")],
    out: Annotated[Path, Opt("--out", "-o", help="Output folder (results/, requests/, ...).")],
    executor: ExecutorOpt = "local",
    workers: WorkersOpt = None,
    ray_address: RayAddressOpt = None,
    max_runs: Annotated[
        int | None, Opt(help="Run at most this many of the pending runs, then stop.")
    ] = None,
    dry_run: Annotated[
        bool, Opt("--dry-run", help="Print the grid and what is left to run; run nothing.")
    ] = False,
) -> int:
    """Run every combination in a sweep spec (resumes: runs already done are skipped)."""
    from analysis.dataset import SweepDir, done_run_ids
    from analysis.errors import AnalysisError
    from analysis.grid import expand
    from analysis.progress import RichSweepProgress
    from analysis.spec import load_spec
    from analysis.sweep import run_sweep
    from traces.outdir import out_dir_problem

    if why := out_dir_problem(out):
        raise AnalysisError(f"--out {out}: {why}")
    parsed = load_spec(spec)
    if max_runs is not None and max_runs < 0:
        raise AnalysisError("--max-runs: must be >= 0")
    console = Console(soft_wrap=True)
    if dry_run:
        grid = expand(parsed)
        done = done_run_ids(SweepDir(out)) & {r.run_id for r in grid.runs}
        axes = _axes(parsed)
        console.print(
            f"{parsed.name}: {len(grid.runs)} runs over {len(grid.traces)} traces "
            f"({len(done)} done, {len(grid.runs) - len(done)} to run); axes: {axes}"
        )
        return 0
    options = ExecutorOptions(workers=workers, ray_address=ray_address)
    with RichSweepProgress() as progress:
        s = run_sweep(parsed, out, executor, options, max_runs, progress, spec.read_text())
    line = (
        f"{parsed.name}: {s.runs} runs, {s.done_before} done before, {s.ok} ok, "
        f"{s.failed} failed now"
    )
    if s.not_started:
        line += f", {s.not_started} left (--max-runs)"
    console.print(f"{line}; {s.wall_s:.1f} s -> {SweepDir(out).results}")
    for run_id, policy, error in s.failures[:5]:
        console.print(f"  failed {run_id} ({policy}): {error}", markup=False)
    if len(s.failures) > 5:
        console.print(f"  ... and {len(s.failures) - 5} more (see the error column)")
    return 1 if s.failed else 0


def _axes(spec) -> str:
    """'trace.rate x5, policy x7, seeds x2' for the axes with more than one value."""
    parts = [f"trace.{k} x{len(v)}" for k, v in spec.trace.items() if len(v) > 1]
    parts.append(f"policy x{len(spec.policies)}")
    parts += [f"policy_params.{k} x{len(v)}" for k, v in spec.policy_params.items()]
    parts += [f"engine.{k} x{len(v)}" for k, v in spec.engine.items() if len(v) > 1]
    if len(spec.profiles) > 1:
        parts.append(f"profile x{len(spec.profiles)}")
    if len(spec.seeds) > 1:
        parts.append(f"seeds x{len(spec.seeds)}")
    return ", ".join(parts)
