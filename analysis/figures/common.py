"""What every report figure shares: its result type, the data it reads, and how a sweep's
rows split into views (the settings held fixed) and series (the lines within a view)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from analysis.dataset import read_requests
from analysis.live_runs import LiveRun
from sim.config import EngineConfig
from traces.fingerprint import FINGERPRINT_KEY

# Result columns that are parameters of a run (besides trace_*); seed is averaged over.
ENGINE_PARAMS = tuple(f for f in EngineConfig.__dataclass_fields__ if f != "seed")
NOT_PARAMS = ("trace_id", "trace_requests", FINGERPRINT_KEY)
# Parameters of the starvation-prevention wrapper that turn it on.
WRAPPER_PARAMS = ("policy_starvation", "policy_max_wait_s")
# D3's ten hues first: plotly's own puts red next to a pinkish red (fcfs and sjf-oracle
# looked alike); then more distinct ones.
PALETTE = qualitative.D3 + qualitative.Dark24
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "star", "cross", "pentagon",
           "triangle-down", "hexagon")
TEMPLATE = "plotly_white"


@dataclass(frozen=True)
class Shown:
    """A figure for the page: a title, a one-line caption, the figure, optional HTML."""

    key: str
    title: str
    caption: str
    figure: go.Figure
    extra_html: str = ""


@dataclass(frozen=True)
class Skipped:
    """A figure whose data the sweep does not have, and a note saying what it needs."""

    key: str
    title: str
    note: str


@dataclass
class ReportData:
    """A sweep's rows (all, and the ok ones), where its files are, and any live runs."""

    runs: pd.DataFrame
    root: Path | None = None
    live: list[LiveRun] = field(default_factory=list)

    @property
    def ok(self) -> pd.DataFrame:
        return self.runs[self.runs["status"] == "ok"]

    def requests(self, run_id: str) -> pd.DataFrame | None:
        return read_requests(self.root, run_id) if self.root is not None else None


def param_columns(df: pd.DataFrame) -> list[str]:
    """The columns that describe a run's setting (trace, policy, engine, profile)."""
    trace = [c for c in df.columns if c.startswith("trace_") and c not in NOT_PARAMS]
    fleet = ("replicas", "router")  # fleet sweeps only
    return trace + [c for c in ("policy", "profile", *fleet, *ENGINE_PARAMS) if c in df.columns]


def varying(df: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """The columns among `columns` with more than one value in df (missing is a value)."""
    return [
        c
        for c in columns
        if c in df.columns and df[c].astype("string").fillna("<none>").nunique() > 1
    ]


def wrapped(df: pd.DataFrame) -> pd.Series:
    """Mask of runs whose policy has starvation prevention on."""
    cols = [c for c in WRAPPER_PARAMS if c in df.columns]
    if not cols:
        return pd.Series(False, index=df.index)
    return df[cols].notna().any(axis=1)


def pretty(column: str) -> str:
    """A column name as a reader wants it: 'trace_rate' -> 'rate'."""
    return column.removeprefix("trace_").removeprefix("policy_")


def fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float | np.floating):
        return f"{value:g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)


def label(row: pd.Series | dict, keys: Sequence[str]) -> str:
    """'fcfs, rate=16' for the values of keys in row (missing ones left out); the policy
    spec goes bare."""
    parts = [
        str(row["policy"]) if k == "policy" else f"{pretty(k)}={fmt(row[k])}"
        for k in keys
        if k == "policy" or fmt(row[k]) != "-"
    ]
    return ", ".join(parts) or "all runs"


def aggregate(df: pd.DataFrame, by: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Mean, std and count of metrics over seeds for each combination of `by`."""
    by = list(by)
    if not by:
        df = df.assign(_all="all")
        by = ["_all"]
    grouped = df.groupby(by, dropna=False, sort=True)
    out = grouped[list(metrics)].mean()
    std = grouped[list(metrics)].std().add_suffix("_std")
    count = grouped.size().rename("seeds")
    return pd.concat([out, std, count], axis=1).reset_index()


def color_map(labels: Sequence[str]) -> dict[str, str]:
    return {lab: PALETTE[i % len(PALETTE)] for i, lab in enumerate(dict.fromkeys(labels))}


def symbol_map(labels: Sequence[str]) -> dict[str, str]:
    """A marker shape per label, so lines that run close stay apart."""
    return {lab: SYMBOLS[i % len(SYMBOLS)] for i, lab in enumerate(dict.fromkeys(labels))}


def merge_identical(named: Sequence[tuple[str, tuple]]) -> list[tuple[str, int]]:
    """(name, signature) pairs -> ('a = b', index of a) per distinct signature, in first
    order: series that would be drawn exactly on top of each other become one, named by
    all of them, instead of the last hiding the others."""
    groups: dict[tuple, list[int]] = {}
    for i, (_, sig) in enumerate(named):
        groups.setdefault(sig, []).append(i)
    return [(" = ".join(named[i][0] for i in idx), idx[0]) for idx in groups.values()]


def signature(values: Sequence[float], digits: int = 4) -> tuple:
    """Values rounded to `digits` significant digits (NaN kept), to compare series."""
    return tuple(float(f"{v:.{digits}g}") if np.isfinite(v) else None for v in values)


def add_views(
    fig: go.Figure, views: list[str], trace_view: list[int], default: int | None = None
) -> None:
    """One dropdown button per view, showing only its traces (no button for one view).
    The view shown first is `default`, else the one with the most traces (ties: the last,
    which in sorted order is the highest arrival rate)."""
    if default is None:
        counts = [trace_view.count(v) for v in range(len(views))]
        default = max(range(len(views)), key=lambda v: (counts[v], v)) if views else 0
    for i, t in enumerate(fig.data):
        t.visible = trace_view[i] == default
    if len(views) < 2:
        return
    buttons = [
        dict(label=v, method="update", args=[{"visible": [tv == k for tv in trace_view]}])
        for k, v in enumerate(views)
    ]
    fig.update_layout(
        updatemenus=[
            dict(
                buttons=buttons,
                active=default,
                x=1,
                xanchor="right",
                y=1.2,
                yanchor="bottom",
                direction="down",
            )
        ]
    )


def split_views(df: pd.DataFrame, keys: Sequence[str]) -> list[tuple[str, pd.DataFrame]]:
    """(label, rows) for each combination of keys, in sorted order; one view if no keys."""
    if not keys:
        return [("all runs", df)]
    out = []
    for _, rows in df.groupby(list(keys), dropna=False, sort=True):
        out.append((label(rows.iloc[0], keys), rows))
    return out


def identity_line(hi: float) -> go.Scatter:
    """The dotted y = x diagonal from 0 to hi of a simulated-against-live scatter."""
    return go.Scatter(x=[0, hi], y=[0, hi], mode="lines", showlegend=False,
                      line={"color": "gray", "dash": "dot"}, hoverinfo="skip")


def style(fig: go.Figure, height: int = 440) -> go.Figure:
    fig.update_layout(
        template=TEMPLATE,
        height=height,
        margin=dict(t=90, l=60, r=20, b=50),
        legend=dict(orientation="v"),
    )
    return fig


FigureFn = Callable[[ReportData], Shown | Skipped | None]
