"""Latency against arrival rate, one line per policy: the paper's main chat-serving plot."""

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
    merge_identical,
    param_columns,
    signature,
    split_views,
    style,
    symbol_map,
    varying,
)

TITLE = "Latency against arrival rate"
METRICS = (
    ("mean_latency_s", "mean latency (s)"),
    ("p90_latency_s", "p90 latency (s)"),
    ("mean_norm_latency_s_per_token", "mean latency per output token (s)"),
)


def rate_figure(data: ReportData) -> Shown | Skipped:
    df = data.ok
    if "trace_rate" not in df.columns:
        return Skipped("rate", TITLE, "no runs with a Poisson arrival rate (trace.rate)")
    df = df[df["trace_rate"].notna()]
    if "stop_after" in df.columns:
        df = df[df["stop_after"].isna()]
    if df["trace_rate"].nunique() < 2:
        return Skipped("rate", TITLE, "needs ok runs at two or more arrival rates (trace.rate)")
    params = [c for c in param_columns(df) if c != "trace_rate"]
    context = [c for c in varying(df, params) if c != "policy"]
    series = ["policy"] if "policy" in varying(df, params) else []
    fig = make_subplots(
        rows=1, cols=3, subplot_titles=[t for _, t in METRICS], horizontal_spacing=0.07
    )
    views, trace_view = [], []
    colors = color_map(df["policy"].tolist())
    symbols = symbol_map(df["policy"].tolist())
    seeds = 1
    for view, rows in split_views(df, context):
        agg = aggregate(rows, series + ["trace_rate"], [m for m, _ in METRICS])
        lines = [
            (n, line.sort_values("trace_rate"))
            for n, line in split_views(agg, series)
            if len(line) > 1
        ]
        if not lines:  # a setting run at one rate only (e.g. a starvation sweep) draws no line
            continue
        sigs = [
            (n, (*line["trace_rate"], *signature(line[[m for m, _ in METRICS]].to_numpy().ravel())))
            for n, line in lines
        ]
        lines = [(merged, lines[i][1], lines[i][0]) for merged, i in merge_identical(sigs)]
        views.append(view)
        v = len(views) - 1
        seeds = max(seeds, int(agg["seeds"].max()))
        for name, line, first in lines:
            for col, (metric, _) in enumerate(METRICS, start=1):
                err = line[f"{metric}_std"] if line["seeds"].max() > 1 else None
                fig.add_trace(
                    go.Scatter(
                        x=line["trace_rate"],
                        y=line[metric],
                        name=name,
                        legendgroup=name,
                        showlegend=col == 1,
                        mode="lines+markers",
                        line=dict(color=colors.get(first, None)),
                        marker=dict(symbol=symbols.get(first, "circle"), size=8),
                        error_y=dict(type="data", array=err, visible=err is not None),
                        hovertemplate=f"{name}<br>rate %{{x}} req/s<br>%{{y:.4g}} s<extra></extra>",
                    ),
                    row=1,
                    col=col,
                )
                trace_view.append(v)
    if not views:
        return Skipped("rate", TITLE, "no policy ran at two or more arrival rates in one setting")
    add_views(fig, views, trace_view)
    fig.update_xaxes(title_text="arrival rate (req/s)")
    fig.update_layout(title=TITLE)
    caption = (
        "Mean and p90 request latency and mean latency per output token (the paper's "
        "main metric) as the Poisson arrival rate grows, one line per policy (policies "
        "with the same results share one, named a = b); "
        f"mean over {seeds} seed(s)."
    )
    return Shown("rate", TITLE, caption, style(fig))
