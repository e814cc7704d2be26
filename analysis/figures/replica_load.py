"""Per-replica load over time in fleet sweeps: requests in each replica's system (queued
or running), from the arrival and finish of each request a sweep keeps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analysis.figures.common import (
    ReportData,
    Shown,
    Skipped,
    add_views,
    color_map,
    param_columns,
    split_views,
    style,
    varying,
)
from analysis.worker import FLEET_REQUEST_COLUMNS

TITLE = "Per-replica load over time"
POINTS = 400  # time points drawn per replica: the page stays small for any trace size


def in_system(requests: pd.DataFrame, times: np.ndarray) -> dict[int, np.ndarray]:
    """{replica: requests that had arrived and not yet finished at each of `times`}; a
    request that never finished (rejected, or cut by stop_after) counts until the end."""
    out = {}
    for replica, rows in requests.groupby("replica", sort=True):
        arrived = np.sort(rows["arrival_s"].to_numpy(np.float64))
        finish = rows["finish_s"].to_numpy(np.float64)
        finished = np.sort(finish[~np.isnan(finish)])
        out[int(replica)] = np.searchsorted(arrived, times, side="right") - np.searchsorted(
            finished, times, side="right"
        )
    return out


def replica_load_figure(data: ReportData) -> Shown | Skipped | None:
    df = data.ok
    if "router" not in df.columns or "replicas" not in df.columns:
        return None  # not a fleet sweep
    if data.root is None:
        return Skipped("replica_load", TITLE, "no sweep folder with per-request records")
    replicas = pd.to_numeric(df["replicas"], errors="coerce").fillna(1)
    df = df[(replicas > 1) & (df["seed"] == df["seed"].min())]
    params = param_columns(df)
    fig = go.Figure()
    views, trace_view = [], []
    for view, rows in split_views(df, varying(df, params)):
        run = rows.iloc[0]
        req = data.requests(run["run_id"])
        if req is None or not set(FLEET_REQUEST_COLUMNS) <= set(req.columns):
            continue
        end = float(np.nanmax(req[["arrival_s", "finish_s"]].to_numpy()))
        times = np.linspace(0.0, end, POINTS)
        loads = in_system(req, times)
        colors = color_map([f"replica {r}" for r in loads])
        views.append(view)
        for replica, load in loads.items():
            name = f"replica {replica}"
            fig.add_trace(
                go.Scatter(
                    x=times,
                    y=load,
                    name=name,
                    mode="lines",
                    line=dict(color=colors[name], shape="hv"),
                    hovertemplate=f"{name}<br>%{{x:.1f}} s: %{{y}} requests<extra></extra>",
                )
            )
            trace_view.append(len(views) - 1)
    if not views:
        return Skipped(
            "replica_load",
            TITLE,
            "the sweep kept no per-request arrival, finish and replica (keep_requests: false, "
            "or made before fleets kept them)",
        )
    add_views(fig, views, trace_view)
    fig.update_xaxes(title_text="time (s)")
    fig.update_yaxes(title_text="requests queued or running")
    fig.update_layout(title=TITLE)
    caption = (
        "Requests in each replica's system (arrived, not yet finished) over time, first "
        "seed; pick the router and setting in the menu. A router that balances keeps the "
        "lines together; one that follows the prefix cache can pile work on one replica."
    )
    return Shown("replica_load", TITLE, caption, style(fig))
