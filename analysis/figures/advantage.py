"""Where ranking pays: each policy's advantage over FCFS across arrival rate and KV memory.

One heatmap per policy and preemption mode, x the arrival rate, y num_gpu_blocks, colour
FCFS's latency per output token over the policy's (above 1: the policy is faster), for
the mean and the p99. The page shows it when a sweep varies both the rate and
num_gpu_blocks and ran fcfs; for any other sweep it is absent, not a note.

advantage_table() is the data (one row per cell, testable on hand-made rows),
advantage_heatmaps() draws it, advantage_figure() reads a sweep folder into both.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import diverging
from plotly.subplots import make_subplots

from analysis.figures.common import (
    ReportData,
    Shown,
    Skipped,
    add_views,
    fmt,
    label,
    param_columns,
    style,
    varying,
)
from analysis.worker import P99_PER_TOKEN, p99_norm_latency

KEY = "advantage"
TITLE = "Where ranking pays: advantage over FCFS by arrival rate and KV memory"
BASELINE = "fcfs"
X, Y = "trace_rate", "num_gpu_blocks"
METRICS = (
    ("mean_norm_latency_s_per_token", "mean latency / token"),
    (P99_PER_TOKEN, "p99 latency / token"),
)
TABLE_COLUMNS = (
    "view",
    "policy",
    "mode",
    X,
    Y,
    "metric",
    "fcfs",
    "value",
    "ratio",
    "seeds",
    "note",
)
# Colour range, in log2 of the ratio: at least 2x and at most 8x either way of 1.
SPAN_LOG2 = (1.0, 3.0)
BLANK = "#d9d9d9"  # a cell without a ratio shows the panel's background
PANEL_HEIGHT = 270


def advantage_figure(data: ReportData) -> Shown | Skipped | None:
    """The map, a note when the grid is a map without fcfs, or None when it is no map."""
    runs = _candidates(data.runs)
    if not is_map(runs):
        return None
    policies = set(runs["policy"])
    if BASELINE not in policies:
        return Skipped(KEY, TITLE, "needs fcfs runs, the baseline of every cell (add fcfs)")
    if policies == {BASELINE}:
        return Skipped(KEY, TITLE, "needs a policy besides fcfs to compare with it")
    table = advantage_table(_with_p99(runs, data))
    seeds = int(table["seeds"].max()) if len(table) else 0
    caption = (
        "Each cell: FCFS's latency per output token divided by the policy's, at that "
        "Poisson arrival rate and KV cache size (num_gpu_blocks), on the same trace and "
        "seed: above 1 (blue) the policy is that many times faster, below 1 (red) slower. "
        "Left half the mean, right half the p99 over requests; one column per preemption "
        "mode (recompute: vLLM V1's; swap: the paper's engine). Grey cells have no ratio: "
        f"a run failed or is missing (hover for why). Mean over {seeds} seed(s)."
    )
    return Shown(KEY, TITLE, caption, advantage_heatmaps(table))


def is_map(runs: pd.DataFrame) -> bool:
    """Whether the runs vary both the arrival rate and num_gpu_blocks."""
    runs = _candidates(runs)
    return all(runs[c].nunique() > 1 for c in (X, Y)) if len(runs) else False


def preemption_mode(runs: pd.DataFrame) -> pd.Series:
    """The preemption each run used: its `preemption`, or for "default" its engine mode's
    own (sim/config.py: recompute in vllm-v1, swap in ltr-paper); prefixed by the engine
    mode when the runs mix engine modes."""
    engine = _column(runs, "engine_mode", "vllm-v1")
    given = _column(runs, "preemption", "default")
    own = engine.map(lambda m: "swap" if m == "ltr-paper" else "recompute")
    mode = given.where(given != "default", own)
    return engine + ", " + mode if engine.nunique() > 1 else mode


def advantage_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per cell of the map: view (the other settings that vary), policy, mode,
    rate, blocks, metric; FCFS's value and the policy's, each the mean over the seeds where
    both ran ok; ratio = fcfs / value; seeds paired; and a note (why a cell has no ratio,
    or that some seeds are missing)."""
    df = _fill_failed(_candidates(runs))
    if df.empty:
        return pd.DataFrame(columns=list(TABLE_COLUMNS))
    df = df.assign(_mode=preemption_mode(df))
    fixed = ("policy", X, Y, "preemption", "engine_mode")
    context = varying(df, [c for c in param_columns(df) if c not in fixed])
    df["_view"] = [label(r, context) for _, r in df.iterrows()] if context else "all runs"
    out = []
    for view, rows in df.groupby("_view", sort=True):
        cells = dict(iter(rows.groupby(["policy", "_mode", X, Y], sort=False)))
        policies = sorted(set(rows["policy"]) - {BASELINE})
        grid = itertools.product(
            policies, sorted(set(rows["_mode"])), sorted(set(rows[X])), sorted(set(rows[Y]))
        )
        for policy, mode, rate, blocks in grid:
            base = cells.get((BASELINE, mode, rate, blocks))
            own = cells.get((policy, mode, rate, blocks))
            for metric, _ in METRICS:
                cell = _cell(base, own, policy, metric)
                out.append(
                    {"view": view, "policy": policy, "mode": mode, X: rate, Y: blocks}
                    | {"metric": metric, **cell}
                )
    return pd.DataFrame(out, columns=list(TABLE_COLUMNS))


def advantage_heatmaps(table: pd.DataFrame) -> go.Figure:
    """A row of panels per policy: (metric, mode) columns, one heatmap each; one shared
    diverging colour scale in log2 of the ratio, centred at 1; a menu for the views."""
    policies = sorted(set(table["policy"]))
    modes = sorted(set(table["mode"]))
    columns = [(metric, name, mode) for metric, name in METRICS for mode in modes]
    titles = [f"{p}<br>{mode}: {name}" for p in policies for _, name, mode in columns]
    fig = make_subplots(
        rows=len(policies),
        cols=len(columns),
        subplot_titles=titles,
        horizontal_spacing=0.05,
        vertical_spacing=min(0.12, 0.5 / len(policies)),
    )
    fig.update_annotations(font_size=11)
    views, trace_view = [], []
    for v, (view, rows) in enumerate(table.groupby("view", sort=True)):
        views.append(view)
        rates, blocks = sorted(set(rows[X])), sorted(set(rows[Y]))
        for r, policy in enumerate(policies, start=1):
            for c, (metric, _, mode) in enumerate(columns, start=1):
                cells = rows[
                    (rows["policy"] == policy) & (rows["mode"] == mode) & (rows["metric"] == metric)
                ]
                fig.add_trace(_heatmap(cells, rates, blocks, policy), row=r, col=c)
                trace_view.append(v)
    add_views(fig, views, trace_view)
    span = _span(table["ratio"])
    ticks = [k for k in range(-3, 4) if abs(k) <= span]
    fig.update_layout(
        title=TITLE,
        plot_bgcolor=BLANK,
        coloraxis=dict(
            colorscale=diverging.RdBu,  # red below 1 (slower than FCFS), blue above
            cmin=-span,
            cmax=span,
            colorbar=dict(
                title=dict(text="FCFS / policy<br>(>1: faster)", side="top"),
                tickvals=ticks,
                ticktext=[f"{2.0**k:g}" for k in ticks],
                len=min(1.0, 400 / (PANEL_HEIGHT * len(policies))),
                y=1,
                yanchor="top",
            ),
        ),
    )
    fig.update_xaxes(showgrid=False, type="category")
    fig.update_yaxes(showgrid=False, type="category")
    fig.update_xaxes(title_text="arrival rate (req/s)", row=len(policies))
    fig.update_yaxes(title_text="num_gpu_blocks", col=1)
    style(fig, 150 + PANEL_HEIGHT * len(policies))
    fig.update_layout(margin=dict(t=130, l=70, r=20, b=50))
    return fig


def _heatmap(cells: pd.DataFrame, rates: list, blocks: list, policy: str) -> go.Heatmap:
    """A blocks x rates heatmap of log2(ratio), each cell labelled with its ratio and a
    hover line saying what it compares (or why it is blank)."""
    full = pd.MultiIndex.from_product([blocks, rates], names=[Y, X])
    grid = cells.set_index([Y, X]).reindex(full)
    ratio = grid["ratio"].to_numpy(dtype=float).reshape(len(blocks), len(rates))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(ratio > 0, np.log2(ratio), np.nan)
    text = [[f"{x:.2f}" if math.isfinite(x) else "" for x in row] for row in ratio]
    hover = [_hover(r, policy) for _, r in grid.iterrows()]
    return go.Heatmap(
        x=[fmt(r) for r in rates],
        y=[fmt(b) for b in blocks],
        z=z.tolist(),
        text=text,
        texttemplate="%{text}",
        textfont=dict(size=11),
        customdata=np.array(hover, dtype=object).reshape(len(blocks), len(rates)).tolist(),
        hovertemplate="rate %{x} req/s, %{y} blocks<br>%{customdata}<extra></extra>",
        hoverongaps=True,
        coloraxis="coloraxis",
        xgap=1,
        ygap=1,
    )


def _hover(cell: pd.Series, policy: str) -> str:
    note = cell["note"] if isinstance(cell["note"], str) else ""
    if not math.isfinite(cell["ratio"]):
        return note or "no runs"
    line = (
        f"fcfs {cell['fcfs']:.4g} s / {policy} {cell['value']:.4g} s per token "
        f"= {cell['ratio']:.2f}"
    )
    return f"{line}<br>{note}" if note else line


def _span(ratios: pd.Series) -> float:
    logs = np.log2(ratios[ratios > 0].to_numpy(dtype=float))
    top = float(np.nanmax(np.abs(logs))) if len(logs) else 0.0
    return min(max(top, SPAN_LOG2[0]), SPAN_LOG2[1])


def _cell(base: pd.DataFrame | None, own: pd.DataFrame | None, policy: str, metric: str) -> dict:
    why = _absent(own, policy) or _absent(base, BASELINE)
    if why:
        return dict(fcfs=math.nan, value=math.nan, ratio=math.nan, seeds=0, note=why)
    pair = pd.concat(
        [_by_seed(base, metric), _by_seed(own, metric)], axis=1, keys=["fcfs", "value"]
    ).dropna()
    if pair.empty:
        note = f"no {metric} for fcfs and {policy} in the same seed"
        return dict(fcfs=math.nan, value=math.nan, ratio=math.nan, seeds=0, note=note)
    fcfs, value = float(pair["fcfs"].mean()), float(pair["value"].mean())
    total = len(set(base["seed"]) | set(own["seed"]))
    note = "" if len(pair) == total else f"{len(pair)} of {total} seeds (others failed)"
    ratio = fcfs / value if value > 0 else math.nan
    return dict(fcfs=fcfs, value=value, ratio=ratio, seeds=len(pair), note=note)


def _absent(rows: pd.DataFrame | None, name: str) -> str:
    """Why rows give no value ('' if one of them ran ok)."""
    if rows is None:
        return f"no {name} run"
    if (rows["status"] == "ok").any():
        return ""
    errors = rows["error"].dropna().astype(str) if "error" in rows else pd.Series(dtype=str)
    return f"{name} failed: {errors.iloc[0] if len(errors) else 'no error recorded'}"


def _by_seed(rows: pd.DataFrame, metric: str) -> pd.Series:
    ok = rows[rows["status"] == "ok"]
    if metric not in ok.columns:
        return pd.Series(dtype=float)
    return ok.groupby("seed")[metric].mean()


def _candidates(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs at a Poisson rate with a block count, data-generation runs left out."""
    if X not in runs.columns or Y not in runs.columns:
        return runs.iloc[0:0]
    keep = runs[X].notna() & runs[Y].notna()
    if "stop_after" in runs.columns:
        keep &= runs["stop_after"].isna()
    return runs[keep]


def _fill_failed(df: pd.DataFrame) -> pd.DataFrame:
    """A failed run's row holds only the settings its spec gave; fill the others from the
    ok runs where they agree on one value, so that the failure lands in its cell."""
    failed = df["status"] != "ok"
    if not failed.any():
        return df
    df = df.copy()
    for c in param_columns(df):
        values = df.loc[~failed, c].dropna().unique()
        if len(values) == 1:
            df.loc[failed & df[c].isna(), c] = values[0]
    return df


def _with_p99(runs: pd.DataFrame, data: ReportData) -> pd.DataFrame:
    """The p99 of latency per token for ok runs whose row predates the column, from their
    kept per-request latencies."""
    ok = runs["status"] == "ok"
    have = runs[P99_PER_TOKEN].notna() if P99_PER_TOKEN in runs.columns else ~ok
    todo = runs.index[ok & ~have]
    if len(todo) == 0:
        return runs
    runs = runs.copy()
    if P99_PER_TOKEN not in runs.columns:
        runs[P99_PER_TOKEN] = math.nan
    for i in todo:
        req = data.requests(runs.at[i, "run_id"])
        if req is not None:
            runs.at[i, P99_PER_TOKEN] = p99_norm_latency(req)
    return runs


def _column(df: pd.DataFrame, name: str, default: str) -> pd.Series:
    if name not in df.columns:
        return pd.Series(default, index=df.index, dtype=object)
    return df[name].astype(object).where(df[name].notna(), default)
