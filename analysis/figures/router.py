"""Routers compared: latency per router and fleet size, for fleet sweeps."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.figures.common import (
    ReportData,
    Shown,
    Skipped,
    add_views,
    aggregate,
    color_map,
    param_columns,
    split_views,
    style,
    varying,
)

TITLE = "Routers compared"
METRICS = (
    ("mean_latency_s", "mean latency (s)"),
    ("p99_latency_s", "p99 latency (s)"),
    ("mean_ttft_s", "mean TTFT (s)"),
)


def router_figure(data: ReportData) -> Shown | Skipped | None:
    df = data.ok
    if "router" not in df.columns:
        return None  # not a fleet sweep
    df = df.assign(router=df["router"].fillna("").replace("", "(one server)"))
    if df["router"].nunique() < 2 and df["replicas"].nunique() < 2:
        return Skipped("router", TITLE, "one router and one fleet size (router: [a, b])")
    params = [c for c in param_columns(df) if c not in ("router", "replicas", "policy")]
    context = varying(df, params)
    fig = make_subplots(rows=1, cols=len(METRICS), subplot_titles=[t for _, t in METRICS])
    df = df.assign(series=df["policy"] + ", " + df["replicas"].astype(str) + " replicas")
    colors = color_map(sorted(df["series"].unique()))
    views, trace_view = [], []
    for v, (view, rows) in enumerate(split_views(df, context)):
        views.append(view)
        agg = aggregate(rows, ["series", "router"], [m for m, _ in METRICS])
        for series, s in agg.groupby("series", sort=True):
            for col, (metric, _) in enumerate(METRICS, start=1):
                fig.add_trace(
                    go.Bar(
                        x=s["router"],
                        y=s[metric],
                        name=series,
                        legendgroup=series,
                        showlegend=col == 1,
                        marker_color=colors[series],
                        hovertemplate=f"{series}<br>%{{x}}<br>%{{y:.4g}}<extra></extra>",
                    ),
                    row=1,
                    col=col,
                )
                trace_view.append(v)
    add_views(fig, views, trace_view)
    fig.update_layout(title=TITLE, barmode="group")
    caption = (
        "Mean and p99 latency and mean TTFT per router, one bar per policy and fleet size "
        "(mean over seeds); the router decides each replica's queue and which prefix "
        "cache a request can hit."
    )
    return Shown("router", TITLE, caption, style(fig))
