"""`ltrsched compare`: how far the simulator was from a live run of the same trace.

Reads two run directories (the schema of traces/results.py); imports neither sim nor
live. Relative error = (sim - live) / live, per summary metric and per request.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from analysis.errors import AnalysisError
from traces.results import add_derived_columns

# (summary key, label); the first group is what the verdict checks.
METRICS = (
    ("mean_latency_s", "mean latency"),
    ("p50_latency_s", "p50 latency"),
    ("p90_latency_s", "p90 latency"),
    ("p99_latency_s", "p99 latency"),
    ("mean_ttft_s", "mean TTFT"),
    ("mean_norm_latency_s_per_token", "mean per-token latency"),
    ("throughput_req_s", "throughput (req/s)"),
    ("throughput_tok_s", "throughput (tok/s)"),
)
THROUGHPUT = ("throughput_req_s", "throughput_tok_s")


@dataclass(frozen=True)
class Tolerances:
    """The verdict's bounds on |relative error|."""

    mean: float = 0.10  # mean latency and throughput
    p90: float = 0.15  # p90 latency


@dataclass
class Comparison:
    sim: str
    live: str
    metrics: list[dict[str, Any]]
    requests_matched: int
    per_request_latency_error: dict[str, float]
    passed: bool
    verdict: str
    notes: list[str] = field(default_factory=list)


def read_run_dir(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    path = Path(path)
    req_path, sum_path = path / "requests.parquet", path / "summary.json"
    if not req_path.is_file() or not sum_path.is_file():
        raise AnalysisError(
            f"{path}: not a run directory (needs requests.parquet and summary.json)"
        )
    try:
        req = pd.read_parquet(req_path)
        summary = json.loads(sum_path.read_text())
    except (OSError, ValueError) as e:
        raise AnalysisError(f"{path}: cannot read the run ({str(e).splitlines()[0]})") from None
    if "latency_s" not in req.columns:
        req = add_derived_columns(req)
    return req, summary


def rel_error(sim: float | None, live: float | None) -> float:
    if (
        sim is None
        or live is None
        or not math.isfinite(sim)
        or not math.isfinite(live)
        or live == 0
    ):
        return math.nan
    return (sim - live) / live


def compare_runs(sim_dir: Path, live_dir: Path, tol: Tolerances = Tolerances()) -> Comparison:
    """Per-metric and per-request errors of sim_dir against live_dir, and a verdict."""
    sim_req, sim_sum = read_run_dir(sim_dir)
    live_req, live_sum = read_run_dir(live_dir)
    rows = []
    for key, label in METRICS:
        s, v = sim_sum.get(key), live_sum.get(key)
        rows.append(
            {"metric": key, "label": label, "sim": s, "live": v, "rel_error": rel_error(s, v)}
        )
    by = {r["metric"]: r["rel_error"] for r in rows}
    checks = [
        ("mean latency", [by["mean_latency_s"]], tol.mean),
        ("throughput", [by[k] for k in THROUGHPUT], tol.mean),
        ("p90 latency", [by["p90_latency_s"]], tol.p90),
    ]
    misses = [
        name for name, errs, bound in checks if any(not (abs(e) <= bound) for e in errs)
    ]  # NaN misses too
    passed = not misses
    verdict = f"within {tol.mean:.0%} on mean latency and throughput, {tol.p90:.0%} on p90: " + (
        "PASS" if passed else f"FAIL ({', '.join(misses)})"
    )
    joined = matched_requests(sim_req, live_req)
    err = (joined["latency_s_sim"] - joined["latency_s_live"]) / joined["latency_s_live"]
    notes = []
    for key in ("policy", "trace"):
        if sim_sum.get(key) != live_sum.get(key):
            notes.append(f"{key} differs: sim {sim_sum.get(key)!r}, live {live_sum.get(key)!r}")
    if live_sum.get("failed"):
        notes.append(f"live run had {live_sum['failed']} failed requests")
    return Comparison(
        sim=str(sim_dir),
        live=str(live_dir),
        metrics=rows,
        requests_matched=len(joined),
        per_request_latency_error={
            "mean_abs": float(err.abs().mean()) if len(err) else math.nan,
            "p50_abs": float(err.abs().median()) if len(err) else math.nan,
            "p90_abs": float(err.abs().quantile(0.9)) if len(err) else math.nan,
        },
        passed=passed,
        verdict=verdict,
        notes=notes,
    )


def matched_requests(sim_req: pd.DataFrame, live_req: pd.DataFrame) -> pd.DataFrame:
    """Requests finished in both runs, one row each, columns suffixed _sim and _live."""
    cols = ["request_id", "latency_s", "ttft_s", "output_tokens", "status"]
    s = sim_req[cols][sim_req["status"] == "finished"]
    v = live_req[cols][live_req["status"] == "finished"]
    return s.merge(v, on="request_id", suffixes=("_sim", "_live"))


def write_scatter_html(sim_dir: Path, live_dir: Path, out: Path) -> None:
    """Per-request latency and TTFT, simulated against live, as a self-contained HTML."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from analysis.figures.common import identity_line

    sim_req, _ = read_run_dir(sim_dir)
    live_req, _ = read_run_dir(live_dir)
    j = matched_requests(sim_req, live_req)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("latency (s)", "TTFT (s)"))
    for col, name in ((1, "latency_s"), (2, "ttft_s")):
        x, y = j[f"{name}_live"], j[f"{name}_sim"]
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                mode="markers",
                marker={"size": 5, "opacity": 0.6},
                text=[
                    f"request {i}, {n} tokens"
                    for i, n in zip(j["request_id"], j["output_tokens_live"], strict=True)
                ],
                name=name,
                showlegend=False,
            ),
            row=1,
            col=col,
        )
        hi = float(max(x.max(), y.max())) if len(j) else 1.0
        fig.add_trace(identity_line(hi), row=1, col=col)
        fig.update_xaxes(title_text="live", row=1, col=col)
        fig.update_yaxes(title_text="simulated", row=1, col=col)
    fig.update_layout(
        title=f"simulated vs live, {len(j)} requests: {Path(sim_dir).name} vs "
        f"{Path(live_dir).name}",
        height=500,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(out, include_plotlyjs=True)


def format_table(c: Comparison) -> str:
    lines = [f"{'metric':<26}{'sim':>12}{'live':>12}{'error':>9}"]
    for r in c.metrics:
        fmt = (lambda x: f"{x:12.4g}") if r["sim"] is not None else (lambda x: f"{'-':>12}")
        live = f"{r['live']:12.4g}" if r["live"] is not None else f"{'-':>12}"
        err = f"{r['rel_error']:+9.1%}" if math.isfinite(r["rel_error"]) else f"{'-':>9}"
        lines.append(f"{r['label']:<26}{fmt(r['sim'])}{live}{err}")
    p = c.per_request_latency_error
    lines.append(
        f"per request ({c.requests_matched} matched): |latency error| mean "
        f"{p['mean_abs']:.1%}, p50 {p['p50_abs']:.1%}, p90 {p['p90_abs']:.1%}"
    )
    lines += [f"note: {n}" for n in c.notes]
    lines.append(c.verdict)
    return "\n".join(lines)


def compare(
    sim: Annotated[Path, typer.Option("--sim", help="Simulated run directory.")],
    live: Annotated[Path, typer.Option("--live", help="Live run directory.")],
    html: Annotated[Path | None, typer.Option(help="Write a per-request scatter here.")] = None,
    tol_mean: Annotated[
        float, typer.Option(help="Bound on mean latency and throughput error.")
    ] = 0.10,
    tol_p90: Annotated[float, typer.Option(help="Bound on p90 latency error.")] = 0.15,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Compare a simulated run with a live run of the same trace: errors and a verdict."""
    c = compare_runs(sim, live, Tolerances(tol_mean, tol_p90))
    if html is not None:
        write_scatter_html(sim, live, html)
    if as_json:
        sys.stdout.write(json.dumps(asdict(c), indent=2, default=str) + "\n")
    else:
        print(format_table(c))
        if html is not None:
            print(f"wrote {html}")
