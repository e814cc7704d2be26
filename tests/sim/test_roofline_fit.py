"""`profile fit`'s parts: the bench reader, the client metrics of a requests table, the
bench's traffic, and the fit recovering a known profile, scored on a held-out run."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from sim.errors import SimError
from sim.fit import (
    ClientTimes,
    apply_knobs,
    bench_metrics,
    bench_requests,
    engine_config_for,
    fit_profile,
    knob_values,
    read_bench,
    summarize_errors,
    synthetic_bench,
)
from sim.profile import profile_from_dict
from sim.roofline import build_roofline
from traces.results import add_derived_columns


def requests(rows):
    df = pd.DataFrame(rows, columns=["arrival_s", "first_token_s", "finish_s", "output_tokens"])
    df["status"] = "finished"
    df["max_token_gap_s"] = 0.0
    return add_derived_columns(df)


def test_client_metrics_known_answer():
    # TTFT 100/300/200 ms, latency 500/500/200 ms; decodes 400 ms over 4 gaps, 200 over 1,
    # and a 1-token request that has no TPOT.
    req = requests([(0.0, 0.1, 0.5, 5), (1.0, 1.3, 1.5, 2), (2.0, 2.2, 2.2, 1)])
    m = bench_metrics(req)
    assert m["mean_ttft_ms"] == pytest.approx(200) and m["median_ttft_ms"] == pytest.approx(200)
    assert m["mean_e2el_ms"] == pytest.approx(400)
    assert m["mean_tpot_ms"] == pytest.approx(150)  # per request, then averaged
    assert m["mean_itl_ms"] == pytest.approx(120)  # every gap pooled: 600 ms / 5
    assert m["request_throughput"] == pytest.approx(3 / 2.2)
    # the front end's overhead shifts TTFT and latency, not the gaps between tokens
    o = bench_metrics(req, request_overhead_s=0.01)
    assert o["mean_ttft_ms"] == pytest.approx(210) and o["mean_e2el_ms"] == pytest.approx(410)
    assert o["mean_tpot_ms"] == m["mean_tpot_ms"] and o["mean_itl_ms"] == m["mean_itl_ms"]
    assert ClientTimes.of(req).metric("p99.9_ttft_ms") == pytest.approx(
        np.percentile([100, 300, 200], 99.9))


def bench_file(tmp_path, name="b.json", **kw):
    data = {"request_rate": 4.0, "burstiness": 1.0, "max_concurrency": None,
            "num_prompts": 10, "mean_ttft_ms": 50.0, "mean_tpot_ms": 10.0, **kw}
    p = tmp_path / name
    p.write_text(json.dumps(data))
    return p


def test_read_bench_takes_vllms_keys(tmp_path):
    b = read_bench(bench_file(tmp_path, request_rate="inf", p99_ttft_ms=80.0, date="x",
                              input_lens=[5] * 10, output_lens=[3] * 10))
    assert math.isinf(b.request_rate) and b.num_prompts == 10
    assert b.metrics == {"mean_ttft_ms": 50.0, "mean_tpot_ms": 10.0, "p99_ttft_ms": 80.0}
    assert b.input_lens == [5] * 10


@pytest.mark.parametrize(("kw", "needle"), [
    ({"request_rate": None}, "request_rate must be a number > 0 or \"inf\""),
    ({"max_concurrency": 32}, "max_concurrency 32 (a closed loop of clients) is not modelled"),
    ({"num_prompts": 0}, "num_prompts must be an integer >= 1"),
    ({"mean_ttft_ms": None, "mean_tpot_ms": None}, "no metric to fit"),
    ({"burstiness": -1}, "burstiness must be a number > 0"),
])
def test_bad_bench_files_name_the_key(tmp_path, kw, needle):
    p = bench_file(tmp_path, **kw)
    with pytest.raises(SimError) as e:
        read_bench(p)
    assert needle in str(e.value) and str(p) in str(e.value)


def test_bench_traffic(tmp_path):
    trace = pd.DataFrame({"request_id": range(20), "arrival_s": 0.0,
                          "prompt_tokens": range(10, 30), "output_tokens": range(1, 21)})
    df = bench_requests(read_bench(bench_file(tmp_path, num_prompts=2000, request_rate=8.0)),
                        pd.concat([trace] * 100, ignore_index=True))
    gaps = np.diff(df["arrival_s"].to_numpy())
    assert df["arrival_s"].iloc[0] == 0 and gaps.mean() == pytest.approx(1 / 8, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.06)  # Poisson: cv 1
    smooth = bench_requests(read_bench(bench_file(tmp_path, num_prompts=2000, burstiness=4.0)),
                            pd.concat([trace] * 100, ignore_index=True))
    g = np.diff(smooth["arrival_s"].to_numpy())
    assert g.std() / g.mean() == pytest.approx(0.5, abs=0.04)  # gamma shape 4: cv 1/2
    burst = bench_requests(read_bench(bench_file(tmp_path, request_rate="inf",
                                                 input_lens=[7] * 10, output_lens=[2] * 10)),
                           trace.iloc[:1])
    assert (burst["arrival_s"] == 0).all() and (burst["prompt_tokens"] == 7).all()
    with pytest.raises(SimError, match="num_prompts 30 but the trace has 20 rows"):
        bench_requests(read_bench(bench_file(tmp_path, num_prompts=30)), trace)


@pytest.fixture(scope="module")
def known():
    """A roofline profile with known knobs, and synthetic benches of it at three rates."""
    base = profile_from_dict(build_roofline("llama-3.1-8b", "H100-SXM", max_model_len=8192))
    truth = {"compute": 0.7, "memory_bandwidth_share": 0.6, "step_overhead_s": 0.002,
             "request_overhead_s": 0.025}
    true = apply_knobs(base, truth)
    rng = np.random.default_rng(3)
    n = 80
    trace = pd.DataFrame({"request_id": np.arange(n), "arrival_s": 0.0,
                          "prompt_tokens": rng.integers(50, 2000, n),
                          "output_tokens": rng.integers(2, 200, n)})
    cfg = engine_config_for(base)
    benches = {rate: synthetic_bench(true, trace, rate, n, cfg) for rate in (2.0, 8.0, 20.0)}
    return base, truth, trace, cfg, benches


def test_fit_recovers_a_known_profile_and_predicts_a_held_out_rate(known, tmp_path):
    base, truth, trace, cfg, benches = known
    paths = {}
    for rate, b in benches.items():
        paths[rate] = tmp_path / f"bench_{rate:g}.json"
        paths[rate].write_text(json.dumps(b))
    fitted = [read_bench(paths[2.0]), read_bench(paths[20.0])]
    held = [read_bench(paths[8.0])]
    before = summarize_errors({"x": {k: bench_metrics_error(base, held[0], trace, cfg, k)
                                     for k in ("mean_ttft_ms", "mean_itl_ms")}})
    res = fit_profile(base, fitted, trace, cfg, holdout=held, max_evals=40)
    fit_err, held_err = summarize_errors(res.errors), summarize_errors(res.holdout_errors)
    for key in ("mean_ttft_ms", "mean_tpot_ms", "mean_itl_ms", "mean_e2el_ms"):
        assert fit_err[key] < 0.03, (key, fit_err)
        assert held_err[key] < 0.05, (key, held_err)
    assert before["mean_ttft_ms"] > 0.2  # the starting profile was far off
    assert res.values["request_overhead_s"] == pytest.approx(truth["request_overhead_s"], rel=0.2)
    assert res.values["compute"] == pytest.approx(truth["compute"], rel=0.2)
    assert res.evaluations <= 42


def bench_metrics_error(profile, bench, trace, cfg, key):
    from sim.fit import predict_bench

    return predict_bench(profile, bench, trace, cfg)[key] / bench.metrics[key] - 1


def test_knobs_round_trip_on_both_forms(known):
    base = known[0]
    assert knob_values(apply_knobs(base, {"memory_bandwidth_share": 0.5}))[
        "memory_bandwidth_share"] == 0.5
    faster = apply_knobs(base, {"compute": 2.0})
    assert faster.step_time(8192, 8192**2, 0, 0) < base.step_time(8192, 8192**2, 0, 0)
    assert faster.factors["gemm_flops_share"] == pytest.approx(1.0)  # capped at the peak
    lin = profile_from_dict({"coefficients": {"c0_s": 0.01, "prefill_token_s": 1e-5,
                                              "prefill_sq_s": 0, "decode_req_s": 1e-4,
                                              "decode_ctx_token_s": 1e-8}})
    slow = apply_knobs(lin, {"prefill": 2.0, "decode": 3.0, "c0_s": 0.02,
                             "request_overhead_s": 0.1})
    assert (slow.prefill_token_s, slow.decode_req_s, slow.c0_s) == pytest.approx((2e-5, 3e-4, 0.02))
    assert slow.request_overhead_s == 0.1 and slow.decode_ctx_token_s == pytest.approx(3e-8)
