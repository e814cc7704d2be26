"""The "where ranking pays" map: FCFS's latency per token over each policy's, per arrival
rate, block count and preemption mode; its data on hand-made rows with known ratios, and
the map in the report of a tiny sweep run through the spec machinery."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.dataset import read_results
from analysis.figures import ReportData, Shown, Skipped
from analysis.figures.advantage import (
    X,
    Y,
    advantage_figure,
    advantage_heatmaps,
    advantage_table,
    preemption_mode,
)
from analysis.grid import expand
from analysis.spec import load_spec, parse_spec
from analysis.sweep import run_sweep
from ltrsched.cli import main

MEAN, P99 = "mean_norm_latency_s_per_token", "p99_norm_latency_s_per_token"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "where-ranking-pays.yaml"


def run(policy, preemption, rate, blocks, mean, seed=0, status="ok", error=""):
    """A result row as a sweep writes it (a failed row has no metrics, no max_num_seqs);
    p99 is 10x the mean for fcfs and 2.5x for the others."""
    ok = status == "ok"
    return {
        "run_id": f"{policy}-{preemption}-{rate}-{blocks}-{seed}",
        "policy": policy,
        "trace_rate": float(rate),
        "num_gpu_blocks": blocks,
        "engine_mode": "ltr-paper",
        "preemption": preemption,
        "max_num_seqs": 256 if ok else None,
        "seed": seed,
        "status": status,
        "error": error,
        MEAN: mean if ok else None,
        P99: (10 if policy == "fcfs" else 2.5) * mean if ok else None,
    }


def known_rows() -> tuple[pd.DataFrame, dict]:
    """fcfs and sjf-oracle over rates {10, 20} x blocks {100, 200} x {recompute, swap},
    with the ratio of means fcfs / sjf-oracle each cell must show (None: blank); the ratio
    of p99s is 4 times it."""
    rows, expect = [], {}
    for pre in ("recompute", "swap"):
        for rate in (10, 20):
            for blocks in (100, 200):
                k = (rate / 10) * (200 / blocks) * (2 if pre == "swap" else 1)
                rows += [
                    run("fcfs", pre, rate, blocks, 0.02 * k),
                    run("sjf-oracle", pre, rate, blocks, 0.02),
                ]
                expect[pre, rate, blocks] = k
    # a policy run that failed, and an fcfs run that is missing: blank cells
    rows = [
        r
        for r in rows
        if r["run_id"] not in ("sjf-oracle-swap-20-100-0", "fcfs-recompute-20-200-0")
    ]
    rows.append(
        run("sjf-oracle", "swap", 20, 100, 0, status="failed", error="SimError: no progress")
    )
    expect["swap", 20, 100] = expect["recompute", 20, 200] = None
    # two more seeds in one cell: seed 1 ran for both (mean over seeds 0 and 1), seed 2
    # failed for sjf-oracle (its fcfs run is left out of the mean)
    rows += [
        run("fcfs", "recompute", 10, 100, 0.08, seed=1),
        run("sjf-oracle", "recompute", 10, 100, 0.02, seed=1),
        run("fcfs", "recompute", 10, 100, 5.0, seed=2),
        run("sjf-oracle", "recompute", 10, 100, 0, seed=2, status="failed", error="x"),
    ]
    expect["recompute", 10, 100] = (0.04 + 0.08) / 2 / 0.02  # 3.0
    return pd.DataFrame(rows), expect


def test_ratios_against_hand_made_rows():
    rows, expect = known_rows()
    table = advantage_table(rows)
    assert set(table["view"]) == {"all runs"}  # the failed rows' missing settings are filled
    assert set(table["policy"]) == {"sjf-oracle"} and len(table) == 8 * 2
    cells = table.set_index(["mode", X, Y, "metric"])
    for (pre, rate, blocks), ratio in expect.items():
        for metric, scale in ((MEAN, 1), (P99, 4)):
            cell = cells.loc[(pre, float(rate), blocks, metric)]
            if ratio is None:
                assert math.isnan(cell["ratio"]) and cell["note"]
            else:
                assert cell["ratio"] == pytest.approx(ratio * scale)
    assert (
        cells.loc[("swap", 20.0, 100, MEAN), "note"] == "sjf-oracle failed: SimError: no progress"
    )
    assert cells.loc[("recompute", 20.0, 200, MEAN), "note"] == "no fcfs run"
    two = cells.loc[("recompute", 10.0, 100, MEAN)]
    assert (two["seeds"], two["fcfs"], two["value"]) == (2, pytest.approx(0.06), 0.02)
    assert two["note"] == "2 of 3 seeds (others failed)"


def test_heatmaps_draw_the_ratios_and_blank_cells():
    rows, expect = known_rows()
    fig = advantage_heatmaps(advantage_table(rows))
    # one policy: columns (mean, recompute), (mean, swap), (p99, recompute), (p99, swap)
    assert len(fig.data) == 4
    swap = fig.data[1]
    assert list(swap.x) == ["10", "20"] and list(swap.y) == ["100", "200"]
    z = np.array(swap.z, dtype=float)  # z[blocks][rate], log2 of the ratio
    assert z[1][0] == pytest.approx(math.log2(expect["swap", 10, 200]))
    assert z[0][0] == pytest.approx(math.log2(expect["swap", 10, 100]))
    assert math.isnan(z[0][1]) and swap.text[0][1] == ""
    assert "failed: SimError" in swap.customdata[0][1]
    assert swap.text[0][0] == f"{expect['swap', 10, 100]:.2f}"
    assert fig.layout.coloraxis.cmin == -fig.layout.coloraxis.cmax  # centred at ratio 1


def test_shown_only_for_a_map_with_fcfs():
    rows, _ = known_rows()
    assert isinstance(advantage_figure(ReportData(rows)), Shown)
    one_size = rows[rows["num_gpu_blocks"] == 100]
    assert advantage_figure(ReportData(one_size)) is None  # not a map: no section, no note
    no_fcfs = rows[rows["policy"] != "fcfs"]
    assert isinstance(advantage_figure(ReportData(no_fcfs)), Skipped)


def test_preemption_mode_resolves_the_default():
    runs = pd.DataFrame(
        {
            "engine_mode": ["vllm-v1", "ltr-paper", "ltr-paper", "ltr-paper"],
            "preemption": ["default", "default", "recompute", "swap"],
        }
    )
    assert preemption_mode(runs).tolist() == [
        "vllm-v1, recompute",
        "ltr-paper, swap",
        "ltr-paper, recompute",
        "ltr-paper, swap",
    ]
    assert preemption_mode(runs.iloc[1:]).tolist() == ["swap", "recompute", "swap"]


TINY = {
    "name": "tiny-map",
    "trace": {
        "source": "synthetic",
        "num_requests": 40,
        "prompt_dist": "uniform:low=10,high=600",
        "output_dist": "uniform:low=1,high=500",
        "rate": [20, 80],
    },
    "policy": ["fcfs", "sjf-oracle"],
    "engine": {
        "engine_mode": "ltr-paper",
        "preemption": ["recompute", "swap"],
        "num_gpu_blocks": [120, 2000],
    },
}


def test_tiny_sweep_report_has_the_map(tmp_path):
    out = tmp_path / "sweep"
    summary = run_sweep(parse_spec(TINY), out, "serial")
    assert (summary.ok, summary.failed) == (16, 0)
    html = tmp_path / "report.html"
    assert main(["report", str(out), "-o", str(html)]) == 0
    page = html.read_text()
    assert '<h2 id="advantage">' in page and 'id="fig-advantage"' in page
    df = read_results(out)
    assert df[P99].notna().all()
    table = advantage_table(df)
    assert len(table) == 2 * 2 * 2 * 2 and table["ratio"].notna().all()
    key = ["trace_rate", "num_gpu_blocks", "preemption"]
    fcfs = df[df["policy"] == "fcfs"].set_index(key)
    sjf = df[df["policy"] == "sjf-oracle"].set_index(key)
    for _, cell in table.iterrows():
        at = (cell[X], cell[Y], cell["mode"])
        want = fcfs.loc[at, cell["metric"]] / sjf.loc[at, cell["metric"]]
        assert cell["ratio"] == pytest.approx(want)


def test_example_spec_expands():
    grid = expand(load_spec(EXAMPLE))
    assert len(grid.runs) == 5 * 4 * 2 * 4 and len(grid.traces) == 5
    prepared = {(r.engine["preemption"], r.engine["num_gpu_blocks"]) for r in grid.runs}
    assert len(prepared) == 2 * 4
