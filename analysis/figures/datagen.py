"""Throughput in synthetic data generation: many prompts at once, stop when K finish."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.figures.common import (
    ReportData,
    Shown,
    Skipped,
    add_views,
    aggregate,
    param_columns,
    split_views,
    style,
    varying,
)

TITLE = "Throughput in data-generation mode"
METRICS = (
    ("throughput_req_s", "requests per second"),
    ("throughput_tok_s", "output tokens per second"),
)


def datagen_figure(data: ReportData) -> Shown | Skipped:
    df = data.ok
    if "stop_after" not in df.columns or df["stop_after"].isna().all():
        return Skipped("datagen", TITLE, "no data-generation runs (engine.stop_after: K)")
    df = df[df["stop_after"].notna()]
    params = [c for c in param_columns(df) if c != "policy"]
    context = varying(df, params)
    fig = make_subplots(rows=1, cols=2, subplot_titles=[t for _, t in METRICS])
    views, trace_view = [], []
    for v, (view, rows) in enumerate(split_views(df, context)):
        views.append(view)
        agg = aggregate(rows, ["policy"], [m for m, _ in METRICS])
        fcfs = agg.loc[agg["policy"] == "fcfs"]
        for col, (metric, _) in enumerate(METRICS, start=1):
            base = float(fcfs[metric].iloc[0]) if len(fcfs) else None
            text = [
                (f"{y:,.0f}" if y >= 100 else f"{y:.3g}")
                + (f"<br>x{y / base:.2f} vs fcfs" if base else "")
                for y in agg[metric]
            ]
            fig.add_trace(
                go.Bar(
                    x=agg["policy"],
                    y=agg[metric],
                    text=text,
                    textposition="outside",
                    textangle=0,
                    cliponaxis=False,
                    name=METRICS[col - 1][1],
                    showlegend=False,
                    hovertemplate="%{x}<br>%{y:.4g}<extra></extra>",
                ),
                row=1,
                col=col,
            )
            trace_view.append(v)
    add_views(fig, views, trace_view)
    fig.update_layout(title=TITLE)
    stop = int(df["stop_after"].iloc[0])
    caption = (
        f"Requests and output tokens per second until {stop} requests have finished, "
        "per policy (the paper's synthetic data generation: all prompts at t=0), with "
        "the speed-up over FCFS where FCFS ran."
    )
    return Shown("datagen", TITLE, caption, style(fig))
