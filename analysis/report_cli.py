"""`ltrsched report DIR -o report.html`: a sweep's results as one offline HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

Opt = typer.Option


def report(
    sweep_dir: Annotated[Path, typer.Argument(help="A sweep's output folder (ltrsched sweep).")],
    out: Annotated[Path, Opt("--out", "-o", help="HTML file to write.")] = Path("report.html"),
    live: Annotated[
        list[Path] | None,
        Opt(
            "--live",
            help="A live run folder, or a folder of them (repeatable); DIR/live/ is read too.",
        ),
    ] = None,
    png: Annotated[
        Path | None,
        Opt("--png", help="Also write each figure as <figure>.png into this folder (kaleido)."),
    ] = None,
) -> None:
    """Write an HTML report of a sweep: summary table, latency, advantage map, CDF, fairness,
    tau, live."""
    from analysis.errors import AnalysisError
    from analysis.report import build_report, load_report_data
    from traces.outdir import out_dir_problem

    if png is not None and (why := out_dir_problem(png)):
        raise AnalysisError(f"--png {png}: {why}")
    data = load_report_data(sweep_dir, live)
    outcome = build_report(data, out, png)
    console = Console(soft_wrap=True)
    shown = ", ".join(s.key for s in outcome.shown) or "none"
    console.print(f"wrote {out}: {len(data.runs)} runs; figures: {shown}", markup=False)
    for s in outcome.skipped:
        console.print(f"  skipped {s.key}: {s.note}", markup=False)
    if outcome.pngs:
        console.print(f"wrote {len(outcome.pngs)} PNGs to {png}", markup=False)
