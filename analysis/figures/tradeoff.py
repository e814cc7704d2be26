"""Mean latency against max waiting time across starvation thresholds: what fairness costs.

Each line is one policy, unit of threshold (steps or seconds), quantum and order among
promoted requests, its points the thresholds (labelled) sorted by threshold; the same
policy without starvation prevention is a lone marker; the dashed black line is the
Pareto front over every point in the view.
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
    split_views,
    style,
    varying,
    wrapped,
)
from analysis.pareto import pareto_front

TITLE = "Latency against max waiting time (starvation prevention)"
Y = "mean_latency_s"
DASHES = ("solid", "dash", "dot", "dashdot")  # one per quantum of a policy
MIN_FRONT_POINTS = 3  # settings in a view before a Pareto front is drawn
XS = (
    ("max_waiting_time_p99_s", "p99 of max waiting time (s)"),
    ("max_waiting_time_max_s", "max waiting time, worst request (s)"),
)


def tradeoff_figure(data: ReportData) -> Shown | Skipped:
    df = data.ok
    mask = wrapped(df)
    if not mask.any():
        return Skipped(
            "tradeoff", TITLE, "no runs with starvation prevention (policy ...:starvation=N)"
        )
    families = set(df.loc[mask, "policy_family"])
    df = df[mask | df["policy_family"].isin(families)].assign(wrapped=mask)
    present = [c for c in WRAPPER_PARAMS if c in df.columns]
    params = [c for c in param_columns(df) if c != "policy"]
    context = varying(df, params)
    metrics = [Y] + [x for x, _ in XS]
    by = ["policy_family", "policy", "wrapped"] + [
        c for c in ("policy_quantum", "policy_order", *present) if c in df.columns
    ]
    fig = make_subplots(rows=1, cols=2, subplot_titles=[t for _, t in XS], horizontal_spacing=0.08)
    views, trace_view = [], []
    for view, rows in split_views(df, context):
        if not rows["wrapped"].any():
            continue
        views.append(view)
        v = len(views) - 1
        agg = aggregate(rows, by, metrics)
        colors = color_map(agg["policy_family"].tolist())
        for col, (x, _) in enumerate(XS, start=1):
            for trace in _lines(agg, x, colors, show_legend=col == 1):
                fig.add_trace(trace, row=1, col=col)
                trace_view.append(v)
            if len(agg) < MIN_FRONT_POINTS:
                continue  # two points make no front: each line says as much by itself
            front = agg.iloc[pareto_front(agg[x], agg[Y])]
            fig.add_trace(
                go.Scatter(
                    x=front[x],
                    y=front[Y],
                    name="Pareto front",
                    legendgroup="pareto",
                    showlegend=col == 1,
                    mode="lines+markers",
                    line=dict(color="black", dash="dash"),
                    marker=dict(symbol="circle-open", size=14, color="black"),
                    line_shape="hv",
                    text=front["policy"],
                    hovertemplate="Pareto: %{text}<br>wait %{x:.3g} s, latency %{y:.3g} s"
                    "<extra></extra>",
                ),
                row=1,
                col=col,
            )
            trace_view.append(v)
    add_views(fig, views, trace_view)
    fig.update_yaxes(title_text="mean latency (s)", col=1)
    fig.update_layout(title=TITLE)
    caption = (
        "Mean latency against the waiting time of the most-starved requests, one "
        "line per policy, threshold unit (engine steps or seconds), quantum and order "
        "of promoted requests, across its thresholds (labelled), the unprotected policy "
        "as a lone marker, and the Pareto front dashed black (drawn from "
        f"{MIN_FRONT_POINTS} points in a view)."
    )
    return Shown("tradeoff", TITLE, caption, style(fig, 480))


def _lines(agg: pd.DataFrame, x: str, colors: dict, show_legend: bool) -> list[go.Scatter]:
    out = []
    for (family, protected), rows in agg.groupby(["policy_family", "wrapped"], sort=True):
        color = colors[family]
        if not protected:
            out.append(
                go.Scatter(
                    x=rows[x],
                    y=rows[Y],
                    name=f"{family} (no starvation prevention)",
                    legendgroup=f"{family}-none",
                    showlegend=show_legend,
                    mode="markers",
                    marker=dict(symbol="x", size=11, color=color),
                    hovertemplate=f"{family}<br>wait %{{x:.3g}} s, latency %{{y:.3g}} s"
                    "<extra></extra>",
                )
            )
            continue
        for k, (label, line) in enumerate(_threshold_lines(rows)):
            line = line.assign(_t=_threshold(line)).sort_values("_t")
            name = f"{family}, {label}"
            out.append(
                go.Scatter(
                    x=line[x],
                    y=line[Y],
                    name=name,
                    legendgroup=name,
                    showlegend=show_legend,
                    mode="lines+markers+text",
                    text=[_threshold_label(r) for _, r in line.iterrows()],
                    textposition="top center",
                    line=dict(color=color, dash=DASHES[k % len(DASHES)]),
                    hovertemplate=f"{name}<br>%{{text}}<br>wait %{{x:.3g}} s, "
                    "latency %{y:.3g} s<extra></extra>",
                )
            )
    return out


def _threshold_lines(rows: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The runs of one protected policy split into lines that each vary one threshold in
    one unit: by unit (steps, seconds, or both set), quantum and order, each labelled."""
    steps = _column(rows, "policy_starvation").notna()
    secs = _column(rows, "policy_max_wait_s").notna()
    unit = pd.Series("steps", index=rows.index).where(steps & ~secs, "seconds")
    unit = unit.where(~(steps & secs), "steps and seconds")
    parts = {
        "unit": unit,
        "quantum": _column(rows, "policy_quantum").astype("string").fillna(""),
        "order": _column(rows, "policy_order").astype("string").fillna(""),
    }
    out = []
    for (u, q, o), line in rows.groupby(list(parts.values()), sort=True):
        label = f"thresholds in {u}"
        label += f", quantum={fmt(float(q))}" if q else ""
        label += f", order={o}" if o else ""
        out.append((label, line))
    return out


def _column(rows: pd.DataFrame, name: str) -> pd.Series:
    return rows.get(name, pd.Series(float("nan"), index=rows.index))


def _threshold(rows: pd.DataFrame) -> pd.Series:
    return _column(rows, "policy_starvation").fillna(_column(rows, "policy_max_wait_s"))


def _threshold_label(row: pd.Series) -> str:
    if pd.notna(row.get("policy_starvation")):
        return f"{fmt(row['policy_starvation'])} steps"
    return f"{fmt(row.get('policy_max_wait_s'))} s"
