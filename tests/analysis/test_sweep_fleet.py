"""Sweeps over fleets: `replicas` and `router` are axes; single-server runs keep their ids."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from analysis.dataset import read_results
from analysis.errors import AnalysisError
from analysis.executors import ExecutorOptions
from analysis.grid import expand
from analysis.spec import load_spec, parse_spec
from analysis.sweep import run_sweep
from analysis.worker import WALL_COLUMNS, make_trace, run_one


def test_replicas_and_routers_are_axes(small_spec):
    small_spec.update(seeds=[0], policy=["fcfs"], policy_params={})
    plain = expand(parse_spec(small_spec))
    one = expand(parse_spec(dict(small_spec, replicas=1)))
    assert {r.run_id for r in one.runs} == {r.run_id for r in plain.runs}
    assert "replicas" not in plain.runs[0].columns
    fleet = expand(parse_spec(dict(small_spec, replicas=[1, 3], router="round-robin")))
    assert len(fleet.runs) == 2 * len(plain.runs)
    assert not {r.run_id for r in fleet.runs} & {r.run_id for r in plain.runs}
    assert sorted({(r.replicas, r.router) for r in fleet.runs}) == [
        (1, "round-robin"),
        (3, "round-robin"),
    ]
    task = next(r for r in fleet.runs if r.replicas == 3)
    out = run_one(task, make_trace(fleet.traces[task.trace_id])[0])
    assert out.row["status"] == "ok", out.row["error"]
    assert out.row["replicas"] == 3 and out.row["router"] == "round-robin"


def test_fleet_spec_mistakes_are_named(small_spec):
    with pytest.raises(AnalysisError, match="router: needed when replicas > 1"):
        parse_spec(dict(small_spec, replicas=[1, 2]))
    with pytest.raises(AnalysisError, match="replicas: must be >= 1"):
        parse_spec(dict(small_spec, replicas=0, router="x"))


def test_report_compares_routers_only_for_fleet_sweeps():
    import pandas as pd

    from analysis.figures.common import ReportData
    from analysis.figures.router import router_figure

    rows = [
        dict(
            status="ok",
            policy="fcfs",
            replicas=n,
            router=r,
            trace_rate=rate,
            seed=0,
            mean_latency_s=lat,
            p99_latency_s=2 * lat,
            mean_ttft_s=lat / 10,
        )
        for n, r, rate, lat in [
            (4, "round-robin", 8, 1.0),
            (4, "least-loaded", 8, 0.8),
            (4, "round-robin", 16, 2.0),
            (4, "least-loaded", 16, 1.5),
        ]
    ]
    shown = router_figure(ReportData(pd.DataFrame(rows)))
    assert shown.key == "router"
    bars = [t for t in shown.figure.data if t.type == "bar"]
    assert len(bars) == 2 * 3  # two rates (views) x three metrics, one series each
    assert sorted(bars[0].x) == ["least-loaded", "round-robin"]
    plain = pd.DataFrame(rows).drop(columns=["router", "replicas"])
    assert router_figure(ReportData(plain)) is None


# ------------------------------------------------ the example fleet sweep, on Ray
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sweep_fleet_routers.yaml"


def _small_fleet_spec(tmp_path) -> Path:
    """The example spec cut to one rate, 4 replicas, round-robin and prefix (2 runs)."""
    raw = yaml.safe_load(EXAMPLE.read_text())
    raw["trace"].update(rate=60, num_requests=200)
    raw.update(replicas=4, router=["round-robin", "prefix"])
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_example_fleet_sweep_expands():
    grid = expand(load_spec(EXAMPLE))
    assert len(grid.runs) == 16
    assert {r.replicas for r in grid.runs} == {2, 4}
    assert len({r.router for r in grid.runs}) == 4


@pytest.mark.skipif(
    not os.environ.get("LTRSCHED_TEST_RAY"),
    reason="starting Ray takes 10-30 s; set LTRSCHED_TEST_RAY=1 to run",
)
def test_a_fleet_sweep_on_ray_gives_the_serial_dataset(tmp_path):
    pytest.importorskip("ray")
    spec = load_spec(_small_fleet_spec(tmp_path))
    serial = run_sweep(spec, tmp_path / "serial", "serial")
    on_ray = run_sweep(spec, tmp_path / "ray", "ray", ExecutorOptions(workers=2))
    assert (serial.ok, on_ray.ok, on_ray.failed) == (2, 2, 0)

    def rows(root):
        df = read_results(root).drop(columns=list(WALL_COLUMNS))
        return df[sorted(df.columns)].sort_values("run_id").reset_index(drop=True)

    df = rows(tmp_path / "ray")
    pd.testing.assert_frame_equal(df, rows(tmp_path / "serial"))
    hit = dict(zip(df["router"].str.split(":").str[0], df["prefix_hit_rate"], strict=True))
    assert hit["prefix"] > hit["round-robin"] + 0.4


def test_in_system_counts_worked_by_hand():
    import numpy as np

    from analysis.figures.replica_load import in_system

    req = pd.DataFrame(
        {
            "replica": [0, 0, 1, 1],
            "arrival_s": [0.0, 1.0, 0.5, 2.0],
            "finish_s": [2.0, 3.0, 1.5, float("nan")],  # 1's second never finished
        }
    )
    loads = in_system(req, np.array([0.0, 0.75, 1.0, 2.0, 3.5]))
    assert loads[0].tolist() == [1, 1, 2, 1, 0]
    assert loads[1].tolist() == [0, 1, 1, 1, 1]


def test_the_report_draws_each_replicas_load_for_a_fleet_sweep(tmp_path):
    from analysis.report import build_report, load_report_data

    spec = load_spec(_small_fleet_spec(tmp_path))
    result = run_sweep(spec, tmp_path / "sweep", "serial")
    assert result.ok == 2
    data = load_report_data(tmp_path / "sweep", None)
    outcome = build_report(data, tmp_path / "report.html", None)
    shown = {s.key: s for s in outcome.shown}
    assert "replica_load" in shown, [(s.key, s.note) for s in outcome.skipped]
    lines = shown["replica_load"].figure.data
    assert len(lines) == 2 * 4  # a view per router, a line per replica
    # every request is counted once: at the end, nothing is left in any system
    assert all(line.y[-1] == 0 for line in lines)
    assert max(max(line.y) for line in lines) > 0
