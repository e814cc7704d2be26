"""`ltrsched live calibrate`: NNLS recovers known coefficients, and the profile it writes
is one the simulator loads."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import typer
import yaml

from live.calibrate import calibrate, fit_step_time
from live.cli import app
from live.errors import LiveError
from live.steplog import steps_frame
from traces.results import write_run

TRUE = {"c0_s": 0.004, "prefill_token_s": 2e-5, "prefill_sq_s": 1e-9, "decode_req_s": 3e-4,
        "decode_ctx_token_s": 2e-7, "prefill_ctx_token_s": 3e-9}


def synthetic_steps(n: int = 400, noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pre = rng.integers(0, 512, n) * (rng.random(n) < 0.3)
    dec = rng.integers(1, 32, n)
    ctx = dec * rng.integers(50, 600, n)
    pctx = pre * rng.integers(0, 2000, n)  # chunk x tokens cached before it
    dur = (TRUE["c0_s"] + TRUE["prefill_token_s"] * pre + TRUE["prefill_sq_s"] * pre**2
           + TRUE["decode_req_s"] * dec + TRUE["decode_ctx_token_s"] * ctx
           + TRUE["prefill_ctx_token_s"] * pctx)
    dur = dur * (1 + noise * rng.standard_normal(n))
    start = np.concatenate([[0.0], np.cumsum(dur)[:-1]])
    rows = [{"step": i, "start_s": start[i], "end_s": start[i] + dur[i],
             "prefill_tokens": int(pre[i]), "prefill_sq_tokens": int(pre[i] ** 2),
             "decode_requests": int(dec[i]), "decode_context_tokens": int(ctx[i]),
             "prefill_ctx_tokens": int(pctx[i]),
             "scheduled_requests": int(dec[i]) + int(pre[i] > 0), "busy_after": True}
            for i in range(n)]
    return steps_frame(rows)


def test_nnls_recovers_known_coefficients():
    fit = fit_step_time(synthetic_steps())
    for k, v in TRUE.items():
        assert fit.coefficients[k] == pytest.approx(v, rel=1e-3)
    assert fit.mape < 1e-3 and fit.r2 > 0.999


def test_steps_logged_without_prefill_ctx_still_fit():
    steps = synthetic_steps()
    steps = steps.assign(duration_s=steps["duration_s"]
                         - TRUE["prefill_ctx_token_s"] * steps["prefill_ctx_tokens"])
    fit = fit_step_time(steps.drop(columns="prefill_ctx_tokens"))
    assert fit.coefficients["prefill_ctx_token_s"] == 0.0
    assert fit.coefficients["decode_req_s"] == pytest.approx(TRUE["decode_req_s"], rel=1e-3)


def test_noisy_fit_reports_its_error_and_keeps_total_time():
    fit = fit_step_time(synthetic_steps(noise=0.1))
    assert 0.03 < fit.mape < 0.2 and fit.p90_abs_error_s > fit.p50_abs_error_s > 0
    assert abs(fit.total_time_error) < 0.01
    assert all(v >= 0 for v in fit.coefficients.values())


def live_run_dir(path, steps: pd.DataFrame):
    req = pd.DataFrame({"request_id": [0], "status": ["finished"]})
    summary = {"engine": "vllm", "model": "models/tiny", "device": "cpu: test (2 cores)",
               "vllm_version": "0.32.0", "policy": "fcfs", "num_gpu_blocks": 500,
               "block_size": 128, "max_num_seqs": 8, "max_num_batched_tokens": 512,
               "chunked_prefill": True, "max_model_len": 1024}
    write_run(path, req, steps, summary)
    return path


def test_profile_loads_in_the_simulator(tmp_path, capsys):
    from ltrsched.cli import main
    from sim.profile import load_profile

    run = live_run_dir(tmp_path / "run", synthetic_steps(noise=0.05))
    out = tmp_path / "prof.yaml"
    typer.main.get_command(app).main(["calibrate", "--run", str(run), "-o", str(out)],
                                     standalone_mode=False)
    assert "MAPE" in capsys.readouterr().out
    data = yaml.safe_load(out.read_text())
    assert data["source"] == "measured" and data["vllm_version"] == "0.32.0"
    assert data["engine"] == {"num_gpu_blocks": 500, "block_size": 128, "max_num_seqs": 8,
                              "max_num_batched_tokens": 512, "chunked_prefill": True,
                              "max_model_len": 1024}
    assert {"mape", "r2", "p50_abs_error_s", "p90_abs_error_s"} <= set(data["fit_error"])
    assert "tiny" in data["method"] and "cpu: test" in data["method"]
    prof = load_profile(str(out))
    assert prof.c0_s == pytest.approx(TRUE["c0_s"], rel=0.2)
    trace = tmp_path / "t.parquet"
    from live_fakes import make_trace

    from traces.io import write_trace

    write_trace(make_trace(30), trace, {"source": "test"})
    assert main(["simulate", "--trace", str(trace), "--profile", str(out), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["completed"] == 30 and s["num_gpu_blocks"] == 500


def test_calibrate_refuses_what_is_not_a_live_run(tmp_path):
    with pytest.raises(LiveError, match="not a run directory"):
        calibrate(tmp_path, tmp_path / "p.yaml")
    run = live_run_dir(tmp_path / "few", synthetic_steps(n=5))
    with pytest.raises(LiveError, match="usable steps"):
        calibrate(run, tmp_path / "p.yaml")


def test_replicate_runs_pool_into_one_fit(tmp_path):
    a = live_run_dir(tmp_path / "a", synthetic_steps(n=300, noise=0.05, seed=1))
    b = live_run_dir(tmp_path / "b", synthetic_steps(n=300, noise=0.05, seed=2))
    out = tmp_path / "p.yaml"
    prof = calibrate([a, b], out)
    assert prof["fit_error"]["steps"] == 600
    assert "runs 'a', 'b'" in prof["method"]
    assert prof["coefficients"]["decode_req_s"] == pytest.approx(TRUE["decode_req_s"], rel=0.2)
    assert yaml.safe_load(out.read_text())["fit_error"]["steps"] == 600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_runs_of_different_engines_are_not_pooled(tmp_path):
    a = live_run_dir(tmp_path / "a", synthetic_steps())
    b = live_run_dir(tmp_path / "b", synthetic_steps())
    summary = json.loads((b / "summary.json").read_text())
    (b / "summary.json").write_text(json.dumps({**summary, "max_num_seqs": 16}))
    with pytest.raises(LiveError, match=r"--run .*b: max_num_seqs is 16 but 8 in --run"):
        calibrate([a, b], tmp_path / "p.yaml")
    assert not (tmp_path / "p.yaml").exists()
