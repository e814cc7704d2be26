"""`ltrsched simulate` end to end: outputs, summary keys, and one-line errors."""

import json

import pandas as pd
import pytest

from ltrsched.cli import main
from tests.sim.conftest import make_trace
from traces.fingerprint import FINGERPRINT_KEY, trace_fingerprint
from traces.io import read_trace, write_trace

KEYS = ["requests", "completed", "rejected", "mean_latency_s", "p50_latency_s",
        "p90_latency_s", "p99_latency_s", "mean_norm_latency_s_per_token", "mean_ttft_s",
        "p99_ttft_s", "mean_tpot_s", "max_waiting_time_p99_s", "max_waiting_time_max_s",
        "throughput_req_s", "throughput_tok_s", "preemptions", "makespan_s", "sim_wall_s"]


@pytest.fixture
def trace(tmp_path):
    path = tmp_path / "t.parquet"
    write_trace(make_trace(200, 30.0, seed=2), path, {"source": "test"})
    return path


def test_json_summary_and_output_files(trace, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["simulate", "--trace", str(trace), "--policy", "sjf-oracle",
               "--num-gpu-blocks", "3000", "--out", str(out), "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(KEYS) <= set(summary)
    assert summary["completed"] == 200 and summary["policy"] == "sjf-oracle"
    assert summary["profile_source"] == "first-principles"
    assert summary[FINGERPRINT_KEY] == trace_fingerprint(read_trace(trace)[0])
    req = pd.read_parquet(out / "requests.parquet")
    steps = pd.read_parquet(out / "steps.parquet")
    assert len(req) == 200 and len(steps) == summary["steps"]
    assert json.loads((out / "summary.json").read_text())["completed"] == 200
    assert not list(out.glob("*.tmp"))


def test_human_summary_names_the_profile_as_an_estimate(trace, capsys):
    assert main(["simulate", "--trace", str(trace)]) == 0
    assert "FIRST-PRINCIPLES" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "needle"), [
    (["--policy", "nope"], "unknown policy 'nope'"),
    (["--policy", "sjf-oracle:starvation=-1"], "starvation"),
    (["--profile", "missing-profile"], "--profile: no such file or bundled profile"),
    (["--engine-mode", "v0"], "--engine-mode: unknown mode 'v0'"),
    (["--preemption", "swap"], "--preemption swap needs --engine-mode ltr-paper"),
    (["--max-num-seqs", "512", "--max-batched-tokens", "256"], "must be >= --max-num-seqs"),
    (["--num-gpu-blocks", "0"], "--num-gpu-blocks: must be >= 1"),
    (["--max-model-len", "0"], "--max-model-len: must be >= 1"),
])
def test_bad_options_are_one_line_errors(trace, capsys, args, needle):
    rc = main(["simulate", "--trace", str(trace), *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert needle in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize(("text", "needle"), [
    ("coefficients: {c0_s: 0.01}", "coefficients.prefill_token_s is missing"),
    ("coefficients: {c0_s: -1, prefill_token_s: 0, prefill_sq_s: 0, decode_req_s: 0, "
     "decode_ctx_token_s: 0}", "coefficients.c0_s must be a number >= 0"),
    ("coefficients: {c0_s: 0.01, prefill_token_s: 0, prefill_sq_s: 0, decode_req_s: 0, "
     "decode_ctx_token_s: 0, bogus: 1}", "unknown coefficient(s) bogus"),
    ("name: x\nsource: guessed\ncoefficients: {c0_s: 0.01, prefill_token_s: 0, "
     "prefill_sq_s: 0, decode_req_s: 0, decode_ctx_token_s: 0}", "source must be"),
    ("[1, 2", "cannot read profile"),
    ("- 1\n- 2", "a profile must be a mapping"),
])
def test_bad_profiles_name_the_file_and_key(trace, tmp_path, capsys, text, needle):
    prof = tmp_path / "p.yaml"
    prof.write_text(text)
    rc = main(["simulate", "--trace", str(trace), "--profile", str(prof),
               "--num-gpu-blocks", "100"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and needle in err and str(prof) in err, err


def test_profile_without_memory_needs_blocks(trace, tmp_path, capsys):
    prof = tmp_path / "p.yaml"
    prof.write_text("coefficients: {c0_s: 0.01, prefill_token_s: 0, prefill_sq_s: 0, "
                    "decode_req_s: 0, decode_ctx_token_s: 0}")
    rc = main(["simulate", "--trace", str(trace), "--profile", str(prof)])
    assert rc == 2 and "give --num-gpu-blocks" in capsys.readouterr().err


def test_step_by_step_flag_gives_the_same_summary(trace, capsys):
    outs = []
    for extra in ([], ["--step-by-step"]):
        assert main(["simulate", "--trace", str(trace), "--json", *extra]) == 0
        s = json.loads(capsys.readouterr().out)
        s.pop("sim_wall_s")
        s["engine"].pop("fast_forward")
        outs.append(s)
    assert outs[0] == outs[1]


def test_a_run_that_rejects_requests_warns_and_says_what_its_figures_are_over(
    trace, tmp_path, capsys
):
    out = tmp_path / "run"
    assert main(["simulate", "--trace", str(trace), "--num-gpu-blocks", "20", "--out",
                 str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    rejected, done = summary["rejected"], summary["completed"]
    assert 0 < rejected < 200 and done == 200 - rejected
    captured = capsys.readouterr()
    warning = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert warning == [f"warning: {rejected:,} of 200 requests rejected (prompt + output "
                       "longer than max_model_len, or than the KV cache holds); latency and "
                       f"throughput are over the {done:,} that completed"]
    assert summary["warnings"] == [warning[0].removeprefix("warning: ")]
    assert f"over {done:,} of 200 requests; {rejected:,} rejected" in " ".join(
        captured.out.split())
    # --json prints the same warning on stderr, and a clean run prints none
    assert main(["simulate", "--trace", str(trace), "--num-gpu-blocks", "20", "--json"]) == 0
    assert capsys.readouterr().err.count("warning:") == 1
    assert main(["simulate", "--trace", str(trace), "--num-gpu-blocks", "3000", "--json"]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err and json.loads(captured.out)["warnings"] == []


def test_a_policy_note_is_a_warning_line(trace, capsys):
    # make_trace's outputs are under 800 tokens: all in the first 820-token class
    assert main(["simulate", "--trace", str(trace), "--num-gpu-blocks", "3000", "--policy",
                 "classify:buckets=10,width=820"]) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "warning: classify:buckets=10,width=820: 100% of the trace's requests fall in "
        "bucket 0 (0-820 tokens), so it orders them almost as fcfs does"
    ]
    assert "throughput (makespan incl. drain)" in captured.out
