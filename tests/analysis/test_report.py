"""The report page: every figure the sweep has data for, with its data, offline; notes
for the figures it lacks data for."""

from __future__ import annotations

import base64
import html as htmllib
import json
import re

import numpy as np
import pandas as pd
import pytest

from analysis.dataset import read_results
from analysis.pareto import pareto_front
from ltrsched.cli import main
from traces.fingerprint import trace_fingerprint
from traces.io import read_trace

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
        "sjf-oracle, thresholds in steps, quantum=10, order=age",
        "sjf-oracle (no starvation prevention)",
    } <= names
    # the front drawn for the last view (rate 90) is the front of its points
    rows = df[(df["trace_rate"] == 90) & (df["policy_name"] == "sjf-oracle")]
    rows = rows[rows["stop_after"].isna()]
    front = rows.iloc[pareto_front(rows["max_waiting_time_p99_s"], rows["mean_latency_s"])]
    drawn = [t for t in data if t["name"] == "Pareto front" and t.get("visible")][0]
    np.testing.assert_allclose(drawn["x"], front["max_waiting_time_p99_s"])


def test_tradeoff_draws_steps_and_seconds_as_lines_each_sorted_by_its_own_threshold():
    from analysis.figures.tradeoff import _lines

    # Tightest threshold last in the frame, and seconds mixed in: one line per unit.
    agg = pd.DataFrame({
        "policy_family": "sjf-oracle",
        "wrapped": True,
        "policy_quantum": 10.0,
        "policy_order": "age",
        "policy_starvation": [1600, 25, None, None, 100, None],
        "policy_max_wait_s": [None, None, 16.0, 1.0, None, 4.0],
        "max_waiting_time_p99_s": [30.0, 19.0, 28.0, 19.5, 20.0, 22.0],
        "mean_latency_s": [9.0, 14.0, 9.5, 14.0, 13.0, 12.0],
    })
    traces = _lines(agg, "max_waiting_time_p99_s", {"sjf-oracle": "red"}, True)
    lines = {t.name: t for t in traces}
    steps = lines["sjf-oracle, thresholds in steps, quantum=10, order=age"]
    secs = lines["sjf-oracle, thresholds in seconds, quantum=10, order=age"]
    assert len(lines) == 2
    assert list(steps.text) == ["25 steps", "100 steps", "1600 steps"]
    assert list(steps.x) == [19.0, 20.0, 30.0]
    assert list(secs.text) == ["1 s", "4 s", "16 s"]
    assert list(secs.x) == [19.5, 22.0, 28.0]


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
    # a replay of the trace under any name matches by the trace's fingerprint
    fp = run["trace_fingerprint"]
    assert fp == trace_fingerprint(read_trace(trace)[0])
    renamed = LiveRun("z", report_sweep, {"policy": "sjf-oracle", "trace": "elsewhere.parquet",
                                          "trace_fingerprint": fp, "requests": 120})
    assert match_live(renamed, df) == run["run_id"]
    other = LiveRun("w", report_sweep, {"policy": "sjf-oracle", "trace": str(trace),
                                        "trace_fingerprint": "0" * 16})
    assert match_live(other, df) is None  # the file's name does not overrule the print


def test_identical_series_share_one_line_named_by_all():
    from analysis.figures.common import merge_identical, signature

    named = [("a", (1.0, 2.0)), ("b", (1.0, 3.0)), ("c", (1.0, 2.0))]
    assert merge_identical(named) == [("a = c", 0), ("b", 1)]
    assert signature([1.23456, float("nan")]) == (1.235, None)


def test_summary_rows_of_policies_with_the_same_results_are_merged():
    import pandas as pd

    from analysis.summary_table import summary_table

    rows = []
    for rate, lat in ((16, {"a": 1.0, "b": 1.0, "c": 1.0}), (64, {"a": 5.0, "b": 3.0, "c": 3.0})):
        for policy, value in lat.items():
            rows.append({"status": "ok", "policy": policy, "trace_rate": rate, "seed": 0,
                         "mean_latency_s": value, "p90_latency_s": value,
                         "mean_norm_latency_s_per_token": value / 10, "mean_ttft_s": 0.1,
                         "max_waiting_time_p99_s": value, "throughput_req_s": 9.0,
                         "preemptions": 0})
    page = summary_table(pd.DataFrame(rows))
    cells = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td>", page)
    assert cells == [("16", "all 3 policies (identical results)"), ("64", "b = c"), ("64", "a")]


def test_two_points_draw_no_pareto_front(tmp_path, small_spec):
    from analysis.figures import ReportData
    from analysis.figures.tradeoff import tradeoff_figure
    from analysis.spec import parse_spec
    from analysis.sweep import run_sweep

    spec = dict(small_spec, policy=["sjf-oracle", "sjf-oracle:starvation=100,quantum=10"],
                seeds=[0], policy_params={})
    spec["trace"] = dict(spec["trace"], rate=[90])
    run_sweep(parse_spec(spec), tmp_path / "s", "serial")
    shown = tradeoff_figure(ReportData(read_results(tmp_path / "s"), tmp_path / "s"))
    names = [t.name for t in shown.figure.data]
    assert "Pareto front" not in names and len(names) == 4  # two traces per panel


def test_the_report_gives_each_predictor_its_tau(tmp_path):
    import pandas as pd

    from analysis.predictor_table import predictor_table
    from traces.io import write_trace

    n = 50
    out = np.arange(1, n + 1)
    trace = pd.DataFrame({"request_id": np.arange(n), "arrival_s": np.arange(n) * 0.1,
                          "prompt_tokens": out[::-1].copy(), "output_tokens": out,
                          "score_perfect": -out.astype(float),
                          "score_reversed": out.astype(float)})
    path = tmp_path / "scored.parquet"
    write_trace(trace, path, {"source": "test"})
    runs = pd.DataFrame({"status": ["ok", "ok"], "trace_path": [str(path), str(path)]})
    page = predictor_table(runs)
    rows = re.findall(r"<tr><td>scored.parquet</td><td>(\w+)</td><td[^>]*>50</td>"
                      r"<td[^>]*>([-\d.]+)</td><td[^>]*>([-\d.]+)</td>", page)
    # the longest prompts here ask for the shortest outputs: the heuristic gets all wrong
    assert rows == [("score_perfect", "1.000", "-1.000"), ("score_reversed", "-1.000", "-1.000")]
    assert predictor_table(runs.assign(trace_path=None)) == ""


def test_summary_table_counts_and_marks_settings_that_rejected_requests():
    import pandas as pd

    from analysis.summary_table import summary_table

    # A small KV cache "wins" on latency by dropping most of the work: it must show.
    rows = [
        {"status": "ok", "policy": "fcfs", "num_gpu_blocks": blocks, "seed": 0,
         "completed": done, "rejected": 2000 - done, "mean_latency_s": lat,
         "p90_latency_s": lat, "mean_norm_latency_s_per_token": lat / 10,
         "mean_ttft_s": 0.1, "max_waiting_time_p99_s": lat, "throughput_req_s": 9.0,
         "preemptions": 0}
        for blocks, done, lat in ((1, 27, 0.071), (30000, 2000, 4.6))
    ]
    page = summary_table(pd.DataFrame(rows))
    assert "<th>completed</th><th>rejected</th>" in page
    assert re.search(r'<tr class="rejected"><td>1</td><td>1</td><td class="num">27</td>'
                     r'<td class="num">1973</td>', page)
    assert re.search(r"<tr><td>30000</td><td>1</td><td class=\"num\">2000</td>"
                     r'<td class="num">0</td>', page)
    assert '<p class="warn">1 setting (highlighted) rejected requests' in page
    clean = summary_table(pd.DataFrame(rows[1:]))
    assert "rejected requests" not in clean and 'class="rejected"' not in clean
