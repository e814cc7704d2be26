"""`ltrsched compare`: relative errors per metric and per request, the verdict, HTML."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import typer

from analysis.compare import METRICS, Tolerances, compare, compare_runs, rel_error
from analysis.errors import AnalysisError
from ltrsched.cli import main as ltrsched_main
from traces.fingerprint import FINGERPRINT_KEY, trace_fingerprint
from traces.results import add_derived_columns, summarize_run, write_run


def make_run(path, scale: float = 1.0, n: int = 50, seed: int = 0, policy: str = "fcfs"):
    rng = np.random.default_rng(seed)
    arrival = np.sort(rng.uniform(0, 10, n))
    first = arrival + 0.1 * scale
    finish = first + rng.uniform(0.5, 2.0, n) * scale
    req = add_derived_columns(
        pd.DataFrame(
            {
                "request_id": np.arange(n),
                "arrival_s": arrival,
                "first_scheduled_s": arrival,
                "first_token_s": first,
                "finish_s": finish,
                "prompt_tokens": 10,
                "output_tokens": rng.integers(5, 50, n),
                "tokens_generated": 0,
                "preemptions": 0,
                "max_token_gap_s": 0.01,
                "status": "finished",
            }
        )
    )
    summary = {**summarize_run(req, 0), "policy": policy, "trace": "t.parquet",
               FINGERPRINT_KEY: trace_fingerprint(req)}
    write_run(path, req, pd.DataFrame(), summary)
    return path


def test_identical_runs_pass_with_zero_error(tmp_path):
    a, b = make_run(tmp_path / "a"), make_run(tmp_path / "b")
    c = compare_runs(a, b)
    assert c.passed and c.verdict.endswith("PASS") and c.requests_matched == 50
    assert all(r["rel_error"] == pytest.approx(0.0) for r in c.metrics)


def test_a_slower_simulation_fails_on_latency(tmp_path):
    sim, live = make_run(tmp_path / "sim", scale=1.3), make_run(tmp_path / "live")
    c = compare_runs(sim, live)
    by = {r["metric"]: r["rel_error"] for r in c.metrics}
    assert by["mean_latency_s"] == pytest.approx(0.3, abs=0.02)
    assert not c.passed and "FAIL (mean latency" in c.verdict and "p90 latency" in c.verdict
    assert compare_runs(sim, live, Tolerances(mean=0.5, p90=0.5)).passed
    assert c.per_request_latency_error["p50_abs"] == pytest.approx(0.3, abs=0.02)


def test_cli_json_html_and_notes(tmp_path, capsys):
    sim = make_run(tmp_path / "sim", policy="sjf-oracle")
    live = make_run(tmp_path / "live")
    html = tmp_path / "scatter.html"
    app = typer.Typer()
    app.command()(compare)
    typer.main.get_command(app).main(
        ["--sim", str(sim), "--live", str(live), "--json", "--html", str(html)],
        standalone_mode=False,
    )
    out = json.loads(capsys.readouterr().out)
    assert out["passed"] and out["requests_matched"] == 50
    assert any("policy differs" in n for n in out["notes"])
    text = html.read_text()
    assert "plotly" in text and len(text) > 1_000_000  # plotly.js inlined: works offline
    # the page says what the command printed: the verdict, each metric, the notes
    assert out["verdict"] in text and 'class="pass"' in text
    assert all(r["label"] in text for r in out["metrics"]) and "policy differs" in text
    assert 'src="https://cdn.plot.ly' not in text


def test_bad_run_dirs_and_nan(tmp_path):
    with pytest.raises(AnalysisError, match="not a run directory"):
        compare_runs(tmp_path, tmp_path)
    assert np.isnan(rel_error(1.0, 0.0)) and np.isnan(rel_error(None, 1.0))


def test_replicates_are_averaged_and_their_spread_reported(tmp_path, capsys):
    # Two live replicates 20% apart; a simulation at their midpoint is exact against
    # the mean, though 10% off each replicate alone.
    lo, hi = make_run(tmp_path / "lo", scale=0.9), make_run(tmp_path / "hi", scale=1.1)
    sim = make_run(tmp_path / "sim", scale=1.0)
    one = compare_runs(sim, [lo])
    assert {r["metric"]: r["rel_error"] for r in one.metrics}["mean_latency_s"] > 0.1
    c = compare_runs(sim, [lo, hi])
    by = {r["metric"]: r for r in c.metrics}
    assert by["mean_latency_s"]["rel_error"] == pytest.approx(0.0, abs=1e-9)
    assert by["mean_latency_s"]["live_min"] < by["mean_latency_s"]["live"]
    assert by["mean_latency_s"]["live"] < by["mean_latency_s"]["live_max"]
    assert c.passed and c.live_runs == 2 and "mean of 2 live runs" in c.verdict
    assert c.live_spread["mean_latency_s"] == pytest.approx(0.2, abs=0.01)
    assert any("differ among themselves by 20.0% in mean latency" in n for n in c.notes)
    assert c.per_request_latency_error["p50_abs"] == pytest.approx(0.0, abs=1e-9)
    app = typer.Typer()
    app.command()(compare)
    typer.main.get_command(app).main(
        ["--sim", str(sim), "--live", str(lo), "--live", str(hi)], standalone_mode=False
    )
    out = capsys.readouterr().out
    assert "live (mean of 2)" in out and "live min" in out and out.rstrip().endswith("PASS")


def test_a_replicate_that_is_not_a_run_is_named(tmp_path):
    good = make_run(tmp_path / "good")
    with pytest.raises(AnalysisError, match="missing: not a run directory"):
        compare_runs(good, [good, tmp_path / "missing"])


def test_the_verdict_is_the_exit_status(tmp_path, capsys):
    live = make_run(tmp_path / "live")
    good, bad = make_run(tmp_path / "good"), make_run(tmp_path / "bad", scale=1.3)
    assert ltrsched_main(["compare", "--sim", str(good), "--live", str(live)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("PASS")
    assert ltrsched_main(["compare", "--sim", str(bad), "--live", str(live)]) == 1
    assert "FAIL (mean latency" in capsys.readouterr().out
    assert ltrsched_main(["compare", "--sim", str(bad), "--live", str(live), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["passed"] is False


def test_runs_of_different_traces_are_refused_unless_asked(tmp_path, capsys):
    live = make_run(tmp_path / "live", n=50)
    other = make_run(tmp_path / "other", n=30)  # another trace: 30 requests
    reseeded = make_run(tmp_path / "reseeded", n=50, seed=1)  # same count, other arrivals
    for sim in (other, reseeded):
        with pytest.raises(AnalysisError, match="ran different traces"):
            compare_runs(sim, live)
    rc = ltrsched_main(["compare", "--sim", str(other), "--live", str(live)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "--allow-different-trace" in err
    assert "30 requests" in err and "50" in err
    c = compare_runs(reseeded, live, allow_different_trace=True)
    assert any("different traces" in n for n in c.notes)
    # A copy of the trace under another name is the same trace: no note about it.
    renamed = make_run(tmp_path / "renamed")
    s = json.loads((renamed / "summary.json").read_text())
    (renamed / "summary.json").write_text(json.dumps({**s, "trace": "copy.parquet"}))
    assert not compare_runs(renamed, live).notes


def test_runs_without_a_fingerprint_are_checked_by_request_count(tmp_path):
    live = make_run(tmp_path / "live", n=50)
    old = make_run(tmp_path / "old", n=30)
    s = json.loads((old / "summary.json").read_text())
    s.pop(FINGERPRINT_KEY)
    (old / "summary.json").write_text(json.dumps(s))
    with pytest.raises(AnalysisError, match="30 requests, fingerprint - against 50"):
        compare_runs(old, live)
    same_count = make_run(tmp_path / "same", n=50)
    s = json.loads((same_count / "summary.json").read_text())
    s.pop(FINGERPRINT_KEY)
    (same_count / "summary.json").write_text(json.dumps(s))
    c = compare_runs(same_count, live)
    assert any("checked by request count only" in n for n in c.notes)


def test_the_table_fits_80_columns_with_replicates(tmp_path):
    from analysis.compare import format_table

    sim = make_run(tmp_path / "sim")
    runs = [make_run(tmp_path / f"r{k}", scale=1 + k / 10) for k in range(3)]
    text = format_table(compare_runs(sim, runs))
    table = text.splitlines()[: 1 + len(METRICS)]  # the header and one row per metric
    assert max(len(line) for line in table) <= 80, table
    assert "live (mean of 3)" in table[0] and "live max" in table[0]


# A/B: `ltrsched compare RUN_A RUN_B`, any two runs, no verdict.


def _sim_run(tmp_path, name, *args):
    from tests.sim.conftest import make_trace
    from traces.io import write_trace

    trace = tmp_path / "ab_trace.parquet"
    if not trace.exists():
        write_trace(make_trace(120, 20.0, seed=3), trace, {"source": "test"})
    out = tmp_path / name
    assert ltrsched_main(["simulate", "--trace", str(trace), "--out", str(out), *args]) == 0
    return out


def test_ab_of_two_simulated_runs_shows_ratios_and_differing_settings(tmp_path, capsys):
    from analysis.ab import compare_ab

    a = _sim_run(tmp_path, "a", "--num-gpu-blocks", "4000")
    b = _sim_run(tmp_path, "b", "--policy", "sjf-oracle", "--num-gpu-blocks", "2000")
    capsys.readouterr()
    c = compare_ab(a, b)
    by = {r["metric"]: r for r in c.metrics}
    sa = json.loads((a / "summary.json").read_text())
    sb = json.loads((b / "summary.json").read_text())
    assert by["mean_latency_s"]["ratio"] == pytest.approx(
        sb["mean_latency_s"] / sa["mean_latency_s"]
    )
    assert by["completed"]["a"] == by["completed"]["b"] == 120
    differ = {d["setting"]: (d["a"], d["b"]) for d in c.differing}
    assert differ == {"policy": ("fcfs", "sjf-oracle"), "num_gpu_blocks": (4000, 2000)}
    assert not c.notes
    rc = ltrsched_main(["compare", str(a), str(b)])
    out = capsys.readouterr().out
    assert rc == 0 and "B/A" in out and "PASS" not in out and "FAIL" not in out
    assert "policy: A fcfs, B sjf-oracle" in out and "num_gpu_blocks: A 4000, B 2000" in out
    lines = out.splitlines()
    assert max(len(line) for line in lines[2:]) <= 80


def test_ab_of_a_simulated_and_a_live_run(tmp_path, capsys):
    sim = _sim_run(tmp_path, "sim", "--num-gpu-blocks", "4000")
    live = make_run(tmp_path / "live", n=120)
    s = json.loads((live / "summary.json").read_text())
    s.update(engine="vllm", model="tiny-llama", num_gpu_blocks=4000, max_num_seqs=256)
    (live / "summary.json").write_text(json.dumps(s))
    capsys.readouterr()
    html = tmp_path / "ab.html"
    rc = ltrsched_main(["compare", str(sim), str(live), "--json", "--html", str(html)])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and "passed" not in out
    differ = {d["setting"]: (d["a"], d["b"]) for d in out["differing"]}
    assert differ["engine"] == ("simulator", "live vLLM") and "num_gpu_blocks" not in differ
    assert differ["model"] == (None, "tiny-llama")
    assert any("different traces" in n for n in out["notes"])  # make_run's own trace
    page = html.read_text()
    assert "<table>" in page and "live vLLM" in page and "B/A" in page


def test_ab_says_what_a_run_threw_away(tmp_path):
    from analysis.ab import compare_ab, format_ab

    a = _sim_run(tmp_path, "a", "--num-gpu-blocks", "4000")
    b = _sim_run(tmp_path, "b", "--num-gpu-blocks", "4000", "--max-model-len", "500")
    c = compare_ab(a, b)
    rej = {r["metric"]: r for r in c.metrics}["rejected"]
    assert rej["a"] == 0 and rej["b"] > 0
    text = format_ab(c)
    assert f"run B's latencies are over {120 - rej['b']} of 120 requests" in text
    assert "max_model_len: A 8192, B 500" in text  # the default profile's


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["ONE"], "give two run directories, RUN_A and RUN_B"),
        (["ONE", "TWO", "--sim", "S"], "not both"),
        ([], "give RUN_A RUN_B, or --sim S --live L"),
        (["--sim", "S"], "give RUN_A RUN_B, or --sim S --live L"),
    ],
)
def test_compare_usage_errors_are_one_line(tmp_path, capsys, args, needle):
    rc = ltrsched_main(["compare", *args])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and needle in err
