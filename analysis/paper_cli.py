"""`ltrsched paper -o DIR`: the paper's experiments on the paper's setting, one report.

Writes DIR/profiles/ (roofline profiles for the paper's GPUs), one sweep folder per
experiment (analysis/paper.py lists them; each resumes on its own), and DIR/paper.md,
DIR/paper.html and DIR/claims.csv: the paper's numbers beside ours.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from analysis.executors import ExecutorOptions
from analysis.sweep_cli import ExecutorOpt, RayAddressOpt, WorkersOpt

Opt = typer.Option

# Per-step CPU costs swept as a cause (s): vLLM 0.4.1 in eager mode schedules, prepares
# inputs and samples on the CPU between GPU steps; the fitted V1 factors carry ~0.
OVERHEAD_AXIS_S = (0.005, 0.015, 0.030)


def paper(
    out: Annotated[Path, Opt("--out", "-o", help="Output folder (profiles, sweeps, report).")],
    quick: Annotated[
        bool, Opt("--quick", help="Two rates for 10 s, smaller burst and data generation, "
                  "8B only, no cause sweeps, no predictor training: a check that "
                  "everything runs.")
    ] = False,
    executor: ExecutorOpt = "local",
    workers: WorkersOpt = None,
    ray_address: RayAddressOpt = None,
    png: Annotated[
        Path | None, Opt("--png", help="Also write the report's figures as PNGs here (kaleido).")
    ] = None,
) -> int:
    """Run the paper's experiments (Fu et al. 2024) on its setting; report its numbers
    beside ours (resumes: runs already done are skipped)."""
    from analysis.errors import AnalysisError
    from analysis.paper import full_scale, quick_scale
    from traces.outdir import out_dir_problem

    for flag, path in (("--out", out), ("--png", png)):
        if path is not None and (why := out_dir_problem(path)):
            raise AnalysisError(f"{flag} {path}: {why}")
    console = Console(soft_wrap=True)
    scale = quick_scale() if quick else full_scale()
    options = ExecutorOptions(workers=workers, ray_address=ray_address)
    report, failed = run_paper(out, scale, executor, options, png, console)
    console.print(report.markdown_table, markup=False)
    console.print(f"wrote {report.markdown}, {report.html} and {report.csv}", markup=False)
    if scale.quick:
        console.print("(a quick run: a check that everything runs, not the paper's "
                      "experiment)", markup=False)
    for p in report.pngs:
        console.print(f"wrote {p}", markup=False)
    return 1 if failed else 0


def run_paper(out: Path, scale, executor: str = "local", options: ExecutorOptions | None = None,
              png: Path | None = None, console: Console | None = None):
    """Profiles, every experiment's sweep (resuming), then the report: (report, runs
    failed)."""
    from analysis.paper import experiments, spec_yaml
    from analysis.paper_report import build_paper_report
    from analysis.progress import RichSweepProgress
    from analysis.spec import parse_spec
    from analysis.sweep import run_sweep

    console = console or Console(soft_wrap=True, quiet=True)
    console.print(scale.describe(), markup=False)
    out.mkdir(parents=True, exist_ok=True)
    profiles, cause_profiles = write_profiles(out / "profiles", scale.models, scale.causes)
    for model, path in profiles.items():
        console.print(f"profile {model}: {path}", markup=False)
    scored = train_predictors(out / "predictor", scale, console)
    exps = experiments(scale, profiles, cause_profiles, scored)
    failed = 0
    for i, exp in enumerate(exps, 1):
        spec = parse_spec(exp.spec, where=exp.key, default_name=exp.key)
        with RichSweepProgress() as progress:
            s = run_sweep(spec, out / exp.key, executor, options, None, progress,
                          spec_yaml(exp))
        failed += s.failed
        console.print(f"[{i}/{len(exps)}] {exp.key}: {s.runs} runs, {s.done_before} done "
                      f"before, {s.ok} ok, {s.failed} failed; {s.wall_s:.1f} s", markup=False)
        for run_id, policy, error in s.failures[:3]:
            console.print(f"  failed {run_id} ({policy}): {error}", markup=False)
    return build_paper_report(out, exps, png, scale, scored), failed


def write_profiles(
    folder: Path, models: tuple[str, ...], causes: bool
) -> tuple[dict[str, str], dict[str, str]]:
    """The paper's models on its GPU through the roofline (what `ltrsched profile
    roofline` writes), and for the cause sweeps the 8B profile with a per-step overhead.
    Returns (model -> file, label -> file)."""
    from dataclasses import replace

    from analysis.paper import engine_settings, paper_data
    from sim.roofline import ESTIMATE_HEADER, build_roofline, load_factors, write_profile

    s = paper_data()["setting"]
    eng = engine_settings()
    folder.mkdir(parents=True, exist_ok=True)
    base = load_factors()

    def one(model: str, path: Path, factors, name: str | None = None) -> str:
        tp = int(s["models"][model]["tp"])
        prof = build_roofline(
            model, s["gpu"], tp=tp, gpu_memory_utilization=float(s["gpu_memory_utilization"]),
            block_size=int(eng["block_size"]), max_num_seqs=int(eng["max_num_seqs"]),
            max_num_batched_tokens=int(eng["max_num_batched_tokens"]), factors=factors,
            name=name)
        command = (f"# made by: ltrsched paper (as ltrsched profile roofline --model {model} "
                   f"--gpu {s['gpu']} --tp {tp} --max-num-batched-tokens "
                   f"{eng['max_num_batched_tokens']})\n")
        write_profile(prof, path, header=ESTIMATE_HEADER + command)
        return str(path)

    profiles = {m: one(m, folder / f"{m}_{s['gpu'].lower()}.yaml", None) for m in models}
    cause_profiles = {}
    if causes:
        main = models[0]
        for o in OVERHEAD_AXIS_S:
            f = replace(base, factors={**base.factors, "step_overhead_s": o},
                        where=f"{base.where} with step_overhead_s {o}")
            label = f"{main}_{s['gpu'].lower()}_step{o * 1e3:g}ms"
            cause_profiles[label] = one(main, folder / f"{label}.yaml", f, name=label)
    return profiles, cause_profiles


def train_predictors(folder: Path, scale, console) -> dict:
    """Our predictor per dataset, trained on records disjoint from the test trace, and
    the top-rate chat trace scored by it: dataset -> Scored. Skipped (empty) without the
    predictor extra or when scale.predictor_records is 0; a model already trained in
    folder is reused."""
    from analysis.paper import (
        DATASETS,
        Scored,
        scored_trace_options,
        training_trace_options,
    )

    if scale.predictor_records <= 0:
        return {}
    try:
        import torch  # noqa: F401
    except ImportError:
        console.print("torch is not installed: the ranker runs as approx-oracle only "
                      "(pip install 'ltrsched[predictor]')", markup=False)
        return {}
    from predictor.checkpoint import WEIGHTS
    from predictor.config import cpu_train_config
    from predictor.metrics import ranking_metrics
    from predictor.scoring import score_trace
    from predictor.train import train
    from traces.build import build_trace
    from traces.config import BuildConfig
    from traces.io import read_trace, write_trace

    out = {}
    folder.mkdir(parents=True, exist_ok=True)
    for data in DATASETS:
        model_dir = folder / f"{data}-minilm"
        scored = folder / f"{data}-test-scored.parquet"
        if not scored.exists():
            if not (model_dir / WEIGHTS).exists():  # written last: the model is whole
                opts = training_trace_options(data, scale.predictor_records)
                tr = build_trace(BuildConfig(**opts))
                train_path = folder / f"{data}-train.parquet"
                write_trace(tr.df, train_path, tr.meta)
                train(cpu_train_config(epochs=1, seed=0), train_path, model_dir)
            test = build_trace(BuildConfig(**scored_trace_options(data, scale), seed=0))
            test_path = folder / f"{data}-test.parquet"
            write_trace(test.df, test_path, test.meta)
            score_trace(model_dir, test_path, scored, name="ours")
        df, _ = read_trace(scored)
        col = next(c for c in df.columns if c.startswith("score_"))
        tau = ranking_metrics(df[col].to_numpy(), df["output_tokens"].to_numpy())["kendall_tau"]
        console.print(f"predictor {data}: Kendall tau {tau:.3f} on the {len(df)}-request "
                      f"test trace -> {scored}", markup=False)
        out[data] = Scored(str(scored.resolve()), col, round(float(tau), 3))
    return out
