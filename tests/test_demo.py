"""The main job's pipeline, without the predictor step (tests/predictor covers it)."""

import json

import pandas as pd

from ltrsched.cli import main


def test_demo_builds_simulates_sweeps_and_reports(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--train-records", "0", "-n", "1000", "-o", str(out)]) == 0
    table = pd.read_csv(out / "comparison.csv")
    assert {"fcfs", "sjf-oracle", "mlfq"} <= set(table["policy"])
    by = table.set_index("policy")["mean_norm_latency_s_per_token"]
    assert by["sjf-oracle"] < by["fcfs"]
    assert (out / "runs" / "fcfs" / "summary.json").exists()
    html = (out / "report.html").read_text()
    assert "plotly" in html.lower() and "sjf-oracle" in html
    assert json.loads((out / "demo.json").read_text())["policies"][0] == "fcfs"


def test_the_comparison_shows_every_policy_spec_whole_at_80_columns():
    from rich.console import Console

    from ltrsched.demo import _print

    specs = ["fcfs", "classify:buckets=10,width=820", "ltr:col=score_demo",
             "ltr:col=score_demo,starvation=200,quantum=10", "approx-oracle:tau=0.5"]
    table = pd.DataFrame({"policy": specs, "mean_latency_s": 11.67, "p90_latency_s": 19.54,
                          "mean_norm_latency_s_per_token": 0.1168, "mean_ttft_s": 5.87,
                          "max_waiting_time_p99_s": 12.84, "throughput_req_s": 37.5,
                          "preemptions": 12345})
    console = Console(width=80, record=True)
    _print(table, console, "a profile")
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    cells = [line.split("  ")[0].strip() for line in text.splitlines()[4:] if line.strip()]
    shown = " ".join(cells).replace(", ", ",").replace(" ", ",")
    for spec in specs:  # each spec, wrapped between its parameters, reads back whole
        assert spec in shown.replace(",,", ","), (spec, cells)
    assert "12345" in text  # the last column is not cut
    head = next(line for line in text.splitlines() if line.strip().startswith("policy"))
    assert "TTFT s" in head and "wait s" in head and "req/s*" in head  # units
    assert "*req/s: completed requests over the makespan" in " ".join(text.split())
    assert "(drain included)" in " ".join(text.split())
