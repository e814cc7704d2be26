"""Simulated against measured: each live run beside the sweep run it replayed."""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.figures.common import ReportData, Shown, Skipped, fmt, identity_line, style
from analysis.live_runs import match_live

TITLE = "Simulated against measured (live vLLM)"
METRICS = (
    ("mean_latency_s", "mean latency (s)"),
    ("p90_latency_s", "p90 latency (s)"),
    ("mean_ttft_s", "mean TTFT (s)"),
    ("throughput_req_s", "throughput (req/s)"),
)


def live_figure(data: ReportData) -> Shown | Skipped:
    if not data.live:
        return Skipped(
            "live", TITLE, "no live runs (put run folders in DIR/live/ or pass --live DIR)"
        )
    pairs, unmatched = [], []
    by_id = data.ok.set_index("run_id")
    for run in data.live:
        rid = match_live(run, data.runs)
        if rid is None:
            unmatched.append(run.name)
        else:
            pairs.append((run, by_id.loc[rid]))
    if not pairs:
        return Skipped(
            "live",
            TITLE,
            f"no live run matches a sweep run ({', '.join(unmatched)}): replay one of "
            "the sweep's traces (DIR/traces/<trace_id>.parquet) under one of its policies "
            "(live replay --trace T --policy P)",
        )
    fig = make_subplots(rows=1, cols=len(METRICS), subplot_titles=[t for _, t in METRICS])
    rows = []
    for col, (metric, _) in enumerate(METRICS, start=1):
        sim = [float(r[metric]) for _, r in pairs]
        live = [float(run.summary.get(metric, float("nan"))) for run, _ in pairs]
        names = [f"{r['policy']} ({run.name})" for run, r in pairs]
        hi = max([v for v in sim + live if pd.notna(v)] or [1.0]) * 1.05
        fig.add_trace(identity_line(hi), row=1, col=col)
        fig.add_trace(
            go.Scatter(
                x=sim,
                y=live,
                mode="markers",
                text=names,
                showlegend=False,
                marker=dict(size=10),
                hovertemplate="%{text}<br>sim %{x:.4g}, live %{y:.4g}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        fig.update_xaxes(title_text="simulated", row=1, col=col)
        for name, s, m in zip(names, sim, live, strict=True):
            rows.append((name, metric, s, m, (s - m) / m if m else float("nan")))
    fig.update_yaxes(title_text="measured", col=1)
    fig.update_layout(title=TITLE)
    caption = (
        "Each live run's measured metrics against the simulation of the same sweep "
        "run (the dotted line is perfect agreement); the table gives the error."
    )
    if unmatched:
        caption += f" Unmatched live runs: {', '.join(unmatched)}."
    return Shown("live", TITLE, caption, style(fig, 420), _error_table(rows))


def _error_table(rows: list[tuple]) -> str:
    head = (
        "<tr><th>run</th><th>metric</th><th>simulated</th><th>measured</th>"
        "<th>error (sim/live - 1)</th></tr>"
    )
    body = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{m}</td><td>{fmt(s)}</td><td>{fmt(v)}</td>"
        f"<td>{e:+.1%}</td></tr>"
        if pd.notna(e)
        else f"<tr><td>{html.escape(n)}</td><td>{m}</td><td>{fmt(s)}</td><td>{fmt(v)}</td>"
        "<td>-</td></tr>"
        for n, m, s, v, e in rows
    )
    return f'<table class="errors">{head}{body}</table>'
