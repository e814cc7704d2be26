"""benchmarks/fit_roofline_factors.py without the simulator: the overhead shift and its solve,
the search recovering known factors through a stand-in replay, the folds, the factors file it
writes (read back by sim/roofline.py), and its one-line errors."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / f"benchmarks/{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


s2r = _load("sim_to_real")
fit = _load("fit_roofline_factors")


@pytest.fixture(scope="module")
def cases():
    experiments = s2r.read_experiments()
    actual = s2r.whole_run(s2r.read_measurements(experiments=experiments)).xs(
        s2r.ACTUAL, level="source"
    )
    return [fit.Case(e, None, None, None, actual.loc[e.exp_id]) for e in experiments]


def _measured_as_simulated(cases, overhead_s: float) -> pd.DataFrame:
    """What a simulation that is right but for a missing front end would give."""
    rows = {}
    for c in cases:
        a = c.actual
        got = {
            "e2e_mean_ms": a["e2e_mean_ms"] - 1e3 * overhead_s,
            "ttft_mean_ms": a["ttft_mean_ms"] - 1e3 * overhead_s,
            "engine_s": 0.1,
        }
        rows[c.run] = s2r.with_client_itl(got, a)
    return pd.DataFrame.from_dict(rows, orient="index")


def test_the_overhead_moves_ttft_and_e2e_not_itl(cases):
    sim = _measured_as_simulated(cases, 0.004)
    shifted = fit.with_overhead(sim, 0.004)
    assert np.allclose(shifted["e2e_mean_ms"], sim["e2e_mean_ms"] + 4.0)
    assert np.allclose(shifted["ttft_mean_ms"], sim["ttft_mean_ms"] + 4.0)
    assert shifted["itl_mean_ms"].tolist() == sim["itl_mean_ms"].tolist()
    # the simulation's own ITL over the client's counted length is the measured one
    assert np.allclose(fit.log_errors(shifted, cases), 0.0, atol=1e-12)


def test_the_overhead_solve_finds_a_known_shift(cases):
    overhead, loss = fit.best_overhead(_measured_as_simulated(cases, 0.0071), cases)
    assert overhead == pytest.approx(0.0071, rel=1e-3)
    assert loss < 1e-8


def test_the_search_recovers_known_factors_through_a_stand_in_replay(cases, monkeypatch):
    """A stand-in for the simulator whose times follow the factors as a decode step would:
    E2E and TTFT grow with the step (weights over bandwidth, the overheads). Measurements
    made from known factors must be found again, the overhead beside them."""
    truth = {
        "memory_bandwidth_share": 0.62,
        "step_overhead_s": 4e-4,
        "layer_overhead_s": 3e-5,
        "allreduce_latency_s": 2e-5,
        "gemm_flops_share": 0.5,
    }
    shape = {
        c.run: (2.0 + i % 5, 20 + 10 * (i % 4), 1 + i % 3, 200 + 50 * (i % 3))
        for i, c in enumerate(cases)
    }

    def times(factors, run):
        weights_ms, layers, tp, out = shape[run]
        step = (
            weights_ms / factors["memory_bandwidth_share"]
            + 1e3 * factors["step_overhead_s"]
            + 1e3 * layers * factors["layer_overhead_s"]
            + (1e3 * 2 * layers * factors["allreduce_latency_s"] if tp > 1 else 0.0)
            + 0.02 * weights_ms / factors["gemm_flops_share"]
        )
        return 1.5 * step, 1.5 * step + (out - 1) * step

    def replay(cs, factors, full=False):
        rows = {}
        for c in cs:
            ttft, e2e = times(factors, c.run)
            rows[c.run] = {"e2e_mean_ms": e2e, "ttft_mean_ms": ttft, "engine_s": 0.0}
        return pd.DataFrame.from_dict(rows, orient="index")

    measured = []
    for c in cases:
        ttft, e2e = times(truth, c.run)
        out = shape[c.run][3]
        a = pd.Series(
            {
                "e2e_mean_ms": e2e + 5.0,
                "ttft_mean_ms": ttft + 5.0,
                "itl_mean_ms": (e2e - ttft) / (out - 1),
            }
        )
        measured.append(fit.Case(c.exp, None, None, None, a))

    def replay_itl(cs, factors, full=False):
        got = replay(cs, factors, full)
        by = {c.run: c for c in cs}
        return pd.DataFrame.from_dict(
            {r: s2r.with_client_itl(row.to_dict(), by[r].actual) for r, row in got.iterrows()},
            orient="index",
        )

    monkeypatch.setattr(fit, "replay", replay_itl)
    start = {
        "memory_bandwidth_share": 0.8,
        "step_overhead_s": 5e-4,
        "layer_overhead_s": 1e-5,
        "allreduce_latency_s": 1e-5,
        "gemm_flops_share": 0.6,
    }
    got = fit.fit(measured, start, max_evals=600)
    assert got.loss < 1e-4
    assert got.request_overhead_s == pytest.approx(0.005, rel=0.05)
    # the decode step the factors price is the true one on every run
    for c in measured:
        assert times(got.factors, c.run)[1] == pytest.approx(times(truth, c.run)[1], rel=0.01)
    for k, (lo, hi) in fit.FITTED.items():
        assert lo <= got.factors[k] <= hi


def test_measured_ttft_is_a_few_decode_steps(cases):
    """The published runs' TTFT against their decode step: a line through the 10 runs of
    short prompts, by the facts alone (the physics the simulator's TTFT is held to)."""
    line = fit.ttft_against_decode_step(cases)
    assert line["runs"] == 10 and line["r2"] > 0.99
    assert 2.5 < line["b_steps"] < 2.8 and 4.0 < line["a_ms"] < 8.0


def test_folds_by_model_and_by_run(cases):
    by_model = fit.holdout_groups(cases, "model")
    assert sorted(len(v) for v in by_model.values()) == [1, 2, 2, 2, 2, 4]
    assert sum(len(v) for v in by_model.values()) == 13
    assert all(len(v) == 1 for v in fit.holdout_groups(cases, "run").values())


def test_shortened_runs_keep_their_rates(cases):
    exp = next(c.exp for c in cases if c.run.startswith("61-"))
    short = fit.shortened(exp, 0.25)
    assert short.stages == ((5.0, 150.0), (10.0, 150.0))
    assert short.num_requests == 750 + 1500 and exp.num_requests == 9000


def test_the_factors_file_it_writes_reads_back(tmp_path, monkeypatch):
    from sim.roofline import load_factors

    f = fit.Fit(
        {
            "memory_bandwidth_share": 0.7123,
            "step_overhead_s": 3.1e-4,
            "layer_overhead_s": 2.2e-5,
            "allreduce_latency_s": 7e-6,
            "gemm_flops_share": 0.55,
        },
        0.0123,
        1.0,
        42,
        10.0,
    )
    line = {"runs": 10, "a_ms": 6.3, "b_steps": 2.65, "r2": 0.998}
    text = fit.factors_text(f, ["what: a test", "command: python x.py"], 1.56, line)
    path = tmp_path / "factors.yaml"
    path.write_text(text)
    back = load_factors(path)
    for k, v in f.factors.items():
        assert back.factors[k] == pytest.approx(v, rel=1e-3)
    shipped = load_factors()
    for k in ("attention_flops_share", "interconnect_share"):  # assumed: kept as they are
        assert back.factors[k] == shipped.factors[k]
    assert back.request_overhead_s == pytest.approx(0.0123, rel=1e-3)
    assert back.non_torch_memory_bytes == pytest.approx(1.56 * 2**30)
    assert "#   command: python x.py" in text and "FITTED" in text


def test_the_shipped_factors_say_how_they_were_fitted():
    from sim.roofline import load_factors

    text = fit.FACTORS_FILE.read_text()
    assert "benchmarks/fit_roofline_factors.py" in text
    f = load_factors()
    for k, (lo, hi) in fit.FITTED.items():  # physically plausible, inside the search box
        assert lo <= f.factors[k] <= hi, k
    assert 0 < f.request_overhead_s < 0.05


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--search-scale", "0"], "--search-scale: must be in (0, 1]"),
        (["--only", "99"], "--only: no run '99'"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(argv, needle, capsys):
    assert fit.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err and err.count("\n") == 1
