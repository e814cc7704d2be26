"""Latency CDFs per policy, from the per-request latencies a sweep keeps."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.figures.common import (
    ReportData,
    Shown,
    Skipped,
    add_views,
    color_map,
    merge_identical,
    param_columns,
    signature,
    split_views,
    style,
    varying,
)

TITLE = "Latency CDFs"
METRICS = (
    ("latency_s", "request latency (s)"),
    ("norm_latency_s_per_token", "latency per output token (s)"),
)
POINTS = 201  # quantiles drawn per curve: the page stays small for any trace size
MAX_CURVES = 24


def cdf_figure(data: ReportData) -> Shown | Skipped:
    df = data.ok
    if data.root is None or df.empty:
        return Skipped("cdf", TITLE, "no sweep folder with per-request latencies")
    df = df[df["seed"] == df["seed"].min()]
    params = param_columns(df)
    context = [c for c in varying(df, params) if c != "policy"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=[t for _, t in METRICS])
    colors = color_map(df["policy"].tolist())
    views, trace_view, cut = [], [], False
    for view, rows in split_views(df, context):
        curves = []
        for _, run in rows.sort_values("policy").iterrows():
            req = data.requests(run["run_id"])
            if req is not None:
                curves.append((run["policy"], req[req["status"] == "finished"]))
        if not curves:
            continue
        p = np.linspace(0.0, 1.0, POINTS)
        quantiles = [
            (
                name,
                [
                    np.quantile(v, p) if len(v) else None
                    for v in (req[m].dropna().to_numpy() for m, _ in METRICS)
                ],
            )
            for name, req in curves
        ]
        sigs = [
            (n, tuple(signature(q) if q is not None else () for q in qs)) for n, qs in quantiles
        ]
        merged = [(name, quantiles[i][0], quantiles[i][1]) for name, i in merge_identical(sigs)]
        cut |= len(merged) > MAX_CURVES
        views.append(view)
        for name, first, qs in merged[:MAX_CURVES]:
            for col, values in enumerate(qs, start=1):
                if values is None:
                    continue
                fig.add_trace(
                    go.Scatter(
                        x=values,
                        y=p,
                        name=name,
                        legendgroup=name,
                        showlegend=col == 1,
                        mode="lines",
                        line=dict(color=colors[first]),
                        hovertemplate=f"{name}<br>%{{x:.3g}} s: %{{y:.0%}}<extra></extra>",
                    ),
                    row=1,
                    col=col,
                )
                trace_view.append(len(views) - 1)
    if not views:
        return Skipped(
            "cdf", TITLE, "the sweep kept no per-request latencies (keep_requests: false)"
        )
    add_views(fig, views, trace_view)
    fig.update_xaxes(type="log")
    fig.update_xaxes(title_text="latency (s, log)", col=1)
    fig.update_xaxes(title_text="latency per output token (s, log)", col=2)
    fig.update_yaxes(title_text="share of finished requests", col=1)
    fig.update_layout(title=TITLE)
    caption = (
        "Distribution of request latency and latency per output token for each policy "
        "(first seed; pick the setting, e.g. the arrival rate, in the menu; policies with "
        "the same latencies share a curve, named a = b)"
        + (f"; at most {MAX_CURVES} curves per setting." if cut else ".")
    )
    return Shown("cdf", TITLE, caption, style(fig))
