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
