"""Latency against predictor quality (Kendall's tau): how good must a ranker be?

approx-oracle runs give the curve (target tau, and the tau its noise reached); ltr runs
with a score column add their measured tau as stars; FCFS and the oracle SJF, when the
sweep has them at the same setting, are the horizontal bounds.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.figures.common import (
    WRAPPER_PARAMS,
    ReportData,
    Shown,
    Skipped,
    add_views,
    aggregate,
    color_map,
    fmt,
    param_columns,
    pretty,
    split_views,
    style,
    varying,
    wrapped,
)

TITLE = "Latency against predictor quality (Kendall's tau)"
METRICS = (
    ("mean_norm_latency_s_per_token", "mean latency per output token (s)"),
    ("mean_latency_s", "mean latency (s)"),
)
BOUNDS = {"fcfs": "dot", "sjf-oracle": "dash"}


def tau_figure(data: ReportData) -> Shown | Skipped:
    df = data.ok
    has_target = "policy_tau" in df.columns and df["policy_tau"].notna().any()
    if not has_target:
        return Skipped("tau", TITLE, "no approx-oracle runs (policy approx-oracle:tau=...)")
    df = df.assign(_series=[_series(r) for _, r in df.iterrows()])
    ltr = (df["policy_name"] == "ltr") & df["achieved_tau"].notna()
    bound = df["policy_name"].isin(list(BOUNDS)) & ~wrapped(df)
    df = df[df["policy_tau"].notna() | ltr | bound]
    params = [c for c in param_columns(df) if c != "policy"]
    context = varying(df, params)
    fig = make_subplots(rows=1, cols=2, subplot_titles=[t for _, t in METRICS])
    views, trace_view = [], []
    metrics = [m for m, _ in METRICS] + ["achieved_tau"]
    lowest = min(0.0, float(df["policy_tau"].min()), float(df["achieved_tau"].min()))
    for view, rows in split_views(df, context):
        curve = rows[rows["policy_tau"].notna()]
        curve = curve[curve.groupby("_series")["policy_tau"].transform("nunique") > 1]
        if curve.empty:  # no policy at two or more taus in this setting: no curve to draw
            continue
        views.append(view)
        v = len(views) - 1
        agg = aggregate(curve, ["_series", "policy_tau"], metrics)
        colors = color_map(agg["_series"].tolist())
        ltr = rows[(rows["policy_name"] == "ltr") & rows["achieved_tau"].notna()]
        bounds = rows[rows["policy_name"].isin(list(BOUNDS)) & ~wrapped(rows)]
        for col, (metric, _) in enumerate(METRICS, start=1):
            for trace in _curves(agg, metric, colors, col == 1):
                fig.add_trace(trace, row=1, col=col)
                trace_view.append(v)
            for trace in _ltr(ltr, metric, col == 1):
                fig.add_trace(trace, row=1, col=col)
                trace_view.append(v)
            for trace in _bounds(bounds, metric, col == 1, lowest):
                fig.add_trace(trace, row=1, col=col)
                trace_view.append(v)
    if not views:
        return Skipped(
            "tau", TITLE, "no approx-oracle policy ran at two or more taus in one setting"
        )
    add_views(fig, views, trace_view)
    fig.update_xaxes(title_text="Kendall's tau (predicted against true length order)")
    fig.update_layout(title=TITLE)
    caption = (
        "Mean latency per output token and mean latency as the approximate oracle's "
        "Kendall's tau rises (line: target tau; hollow: tau reached), learned rankers "
        "at their measured tau (stars), FCFS and oracle SJF as horizontal bounds."
    )
    return Shown("tau", TITLE, caption, style(fig))


def _series(row: pd.Series) -> str:
    """The policy without its tau and noise seed: one curve per wrapper setting."""
    parts = [row["policy_name"]]
    for k in WRAPPER_PARAMS:
        if pd.notna(row.get(k)):
            parts.append(f"{pretty(k)}={fmt(row[k])}")
    if len(parts) > 1 and pd.notna(row.get("policy_quantum")):
        parts.append(f"quantum={fmt(row['policy_quantum'])}")
    return ", ".join(parts)


def _curves(agg: pd.DataFrame, metric: str, colors: dict, legend: bool) -> list[go.Scatter]:
    out = []
    for name, line in agg.groupby("_series", sort=True):
        line = line.sort_values("policy_tau")
        out.append(
            go.Scatter(
                x=line["policy_tau"],
                y=line[metric],
                name=f"{name} (target tau)",
                legendgroup=name,
                showlegend=legend,
                mode="lines+markers",
                line=dict(color=colors[name]),
                hovertemplate=f"{name}<br>target tau %{{x:.2f}}<br>%{{y:.4g}} s<extra></extra>",
            )
        )
        reached = line[line["achieved_tau"].notna()]
        if len(reached):
            out.append(
                go.Scatter(
                    x=reached["achieved_tau"],
                    y=reached[metric],
                    name=f"{name} (tau reached)",
                    legendgroup=name,
                    showlegend=legend,
                    mode="markers",
                    marker=dict(symbol="circle-open", size=11, color=colors[name]),
                    hovertemplate=f"{name}<br>tau reached %{{x:.3f}}<br>%{{y:.4g}} s"
                    "<extra></extra>",
                )
            )
    return out


def _ltr(ltr: pd.DataFrame, metric: str, legend: bool) -> list[go.Scatter]:
    if ltr.empty:
        return []
    return [
        go.Scatter(
            x=ltr["achieved_tau"],
            y=ltr[metric],
            name="ltr (measured tau)",
            legendgroup="ltr",
            showlegend=legend,
            mode="markers",
            text=ltr["policy"],
            marker=dict(symbol="star", size=14, color="black"),
            hovertemplate="%{text}<br>tau %{x:.3f}<br>%{y:.4g} s<extra></extra>",
        )
    ]


def _bounds(rows: pd.DataFrame, metric: str, legend: bool, lowest: float) -> list[go.Scatter]:
    out = []
    for name, dash in BOUNDS.items():
        value = rows.loc[rows["policy_name"] == name, metric].mean()
        if pd.notna(value):
            out.append(
                go.Scatter(
                    x=[lowest, 1],
                    y=[value, value],
                    name=name,
                    legendgroup=f"bound-{name}",
                    showlegend=legend,
                    mode="lines",
                    line=dict(color="gray", dash=dash),
                    hovertemplate=f"{name}: %{{y:.4g}} s<extra></extra>",
                )
            )
    return out
