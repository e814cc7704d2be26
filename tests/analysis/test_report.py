"""The report page: every figure the sweep has data for, with its data, offline; notes
for the figures it lacks data for."""

from __future__ import annotations

import base64
import html as htmllib
import json
import re

import numpy as np
import pytest

from analysis.dataset import read_results
from analysis.pareto import pareto_front
from ltrsched.cli import main

TITLES = {
    "rate": "Latency against arrival rate",
    "cdf": "Latency CDFs",
    "tradeoff": "Latency against max waiting time (starvation prevention)",
    "tau": "Latency against predictor quality (Kendall's tau)",
    "datagen": "Throughput in data-generation mode",
    "live": "Simulated against measured (live vLLM)",
}


def figure_json(page: str, div_id: str) -> tuple[list[dict], dict]:
    """(data, layout) of the plotly figure drawn into div_id, typed arrays decoded."""
    m = re.search(r'Plotly\.newPlot\(\s*"fig-' + re.escape(div_id) + r'",\s*', page)
    assert m, f"no figure {div_id}"
    decoder = json.JSONDecoder()
    data, end = decoder.raw_decode(page, m.end())
    layout, _ = decoder.raw_decode(page, page.index("{", end))
    return [_decode(t) for t in data], layout


def _decode(obj):
    if isinstance(obj, dict) and "bdata" in obj and "dtype" in obj:
        return np.frombuffer(base64.b64decode(obj["bdata"]), dtype=obj["dtype"]).tolist()
    if isinstance(obj, dict):
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj


@pytest.fixture(scope="module")
def page(report_html) -> str:
    return report_html.read_text()


def test_every_figure_with_title_and_caption(page):
    for key, title in TITLES.items():
        _, layout = figure_json(page, key)
        assert layout["title"]["text"] == title
        assert f'<h2 id="{key}">' in page
    assert page.count('<p class="caption">') == len(TITLES) + 1  # + the summary table's
    assert "Figures without data" not in page


def test_page_is_self_contained(page):
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert not re.search(r"<link[^>]*\bhref=", page)
    assert "Plotly.newPlot" in page and len(page) > 3_000_000  # plotly.js is inlined


def test_summary_table_holds_every_setting(page, report_sweep):
    df = read_results(report_sweep)
    table = page[page.index('<table class="summary">') :]
    table = table[: table.index("</table>")]
    assert table.count("<tr>") == 1 + len(df)  # one seed: one row per run
    fcfs = df[(df["policy"] == "fcfs") & (df["trace_rate"] == 90)].iloc[0]
    assert f"{fcfs['mean_latency_s']:.4g}" in table
    assert "first-principles estimate" in page


def test_rate_figure_data(page, report_sweep):
    df = read_results(report_sweep)
    data, _ = figure_json(page, "rate")
    lines = {t["name"]: t for t in data if t.get("xaxis", "x") == "x"}
    assert set(lines) == set(df.loc[df["trace_rate"].notna(), "policy"])
    fcfs = df[(df["policy"] == "fcfs") & df["trace_rate"].notna()].sort_values("trace_rate")
    assert lines["fcfs"]["x"] == [30.0, 90.0]
    np.testing.assert_allclose(lines["fcfs"]["y"], fcfs["mean_latency_s"])


def test_tradeoff_marks_the_pareto_front(page, report_sweep):
    df = read_results(report_sweep)
    data, _ = figure_json(page, "tradeoff")
    names = {t["name"] for t in data}
    assert {
        "Pareto front",
        "sjf-oracle, quantum=10",
        "sjf-oracle (no starvation prevention)",
    } <= names
    # the front drawn for the last view (rate 90) is the front of its points
    rows = df[(df["trace_rate"] == 90) & (df["policy_name"] == "sjf-oracle")]
    rows = rows[rows["stop_after"].isna()]
    front = rows.iloc[pareto_front(rows["max_waiting_time_p99_s"], rows["mean_latency_s"])]
    drawn = [t for t in data if t["name"] == "Pareto front" and t.get("visible")][0]
    np.testing.assert_allclose(drawn["x"], front["max_waiting_time_p99_s"])


def test_tau_and_datagen_and_live_data(page, report_sweep):
    df = read_results(report_sweep)
    tau, _ = figure_json(page, "tau")
    curve = [t for t in tau if t["name"] == "approx-oracle (target tau)" and t.get("visible")]
    assert curve and curve[0]["x"] == [0.3, 0.7]
    assert any(t["name"] == "approx-oracle (tau reached)" for t in tau)
    assert {"fcfs", "sjf-oracle"} <= {t["name"] for t in tau}
    gen, _ = figure_json(page, "datagen")
    stop = df[df["stop_after"].notna()].sort_values("policy")
    np.testing.assert_allclose(gen[0]["y"], stop["throughput_req_s"])
    live, _ = figure_json(page, "live")
    points = [t for t in live if t.get("mode") == "markers"]
    assert len(points) == 4 and points[0]["y"][0] == pytest.approx(points[0]["x"][0] * 1.1)
    assert "-9.1%" in page  # sim/live - 1 for live = 1.1 x sim


def test_absent_data_is_skipped_with_a_note(small_spec, write_spec, tmp_path, capsys):
    small_spec.update(policy=["fcfs", "sjf-oracle"], policy_params={}, seeds=[0])
    small_spec["trace"]["rate"] = 50
    out = tmp_path / "sweep"
    assert main(["sweep", str(write_spec(small_spec)), "-o", str(out)]) == 0
    html = tmp_path / "r.html"
    assert main(["report", str(out), "-o", str(html)]) == 0
    printed = capsys.readouterr().out
    assert "figures: cdf" in printed and "skipped rate: needs ok runs at two or more" in printed
    page = html.read_text()
    assert "Figures without data" in page
    for key in ("rate", "tradeoff", "tau", "datagen", "live"):
        assert f'<h2 id="{key}">' not in page
        assert htmllib.escape(TITLES[key]) in page  # named in the notes


def test_report_errors_are_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no sweep results" in err


@pytest.mark.parametrize(
    "x,y,front",
    [
        ([1, 2, 3], [3, 2, 1], [0, 1, 2]),
        ([1, 2, 3], [1, 2, 3], [0]),
        ([2, 1, 1, 3], [1, 3, 2, 0], [2, 0, 3]),
        ([1, np.nan, 2], [2, 0, 1], [0, 2]),
    ],
)
def test_pareto_front(x, y, front):
    assert pareto_front(x, y).tolist() == front


def test_live_run_matches_by_policy_and_trace(report_sweep):
    from analysis.live_runs import LiveRun, match_live

    df = read_results(report_sweep)
    run = df[(df["policy"] == "sjf-oracle") & (df["trace_rate"] == 30)].iloc[0]
    trace = report_sweep / "traces" / f"{run['trace_id']}.parquet"
    assert trace.exists()
    live = LiveRun("x", report_sweep, {"policy": "sjf-oracle", "trace": str(trace)})
    assert match_live(live, df) == run["run_id"]
    # without the trace, the policy and request count fit both rates: no guess
    vague = LiveRun("y", report_sweep, {"policy": "sjf-oracle", "requests": 120})
    assert match_live(vague, df) is None
