"""`ltrsched policies oracle-dist`: log-normal oracle distributions with noisy parameters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ltrsched.cli import main
from policies import make_policy
from policies.dist_math import lognormal_on_bins
from policies.lengthdist import bin_of, dist_columns
from policies.oracle_dist import DEFAULT_SIGMA, oracle_dist
from policies.views import views_from_trace
from traces.io import read_trace, write_trace

LENGTHS = [1, 7, 8, 10, 72, 80, 500, 4096, 40000]


@pytest.fixture
def trace_file(tmp_path):
    n = len(LENGTHS)
    df = pd.DataFrame(
        {
            "request_id": np.arange(n),
            "arrival_s": np.linspace(0, 1, n),
            "prompt_tokens": np.full(n, 12),
            "output_tokens": LENGTHS,
        }
    )
    path = tmp_path / "t.parquet"
    write_trace(df, path, {"source": "unit"})
    return path


def test_cli_writes_the_columns_a_distribution_that_sums_to_one(trace_file, tmp_path, capsys):
    out = tmp_path / "o.parquet"
    argv = ["policies", "oracle-dist", "--trace", str(trace_file), "-o", str(out)]
    assert main([*argv, "--noise", "0.5", "--seed", "3"]) == 0
    assert "dist_oracle_00..38 and score_oracle" in capsys.readouterr().out
    df, meta = read_trace(out)
    p = df[dist_columns("oracle")].to_numpy()
    assert p.shape == (len(LENGTHS), len(dist_columns("oracle")))
    assert (p >= 0).all() and np.allclose(p.sum(axis=1), 1.0)
    eps = np.random.default_rng(3).standard_normal(len(LENGTHS))
    assert df["score_oracle"].to_numpy() == pytest.approx(-np.array(LENGTHS) * np.exp(0.5 * eps))
    assert meta["source"] == "unit"
    assert meta["oracle_dist"]["oracle"] == {
        "kind": "oracle log-normal",
        "family": "centred on output_tokens",
        "sigma": DEFAULT_SIGMA,
        "noise": 0.5,
        "seed": 3,
        "max_tokens": None,
    }
    # The columns feed the policies: gittins by default, ltr on the score column.
    views = views_from_trace(df)
    for spec in ("gittins", "serpt", "ltr:col=score_oracle"):
        make_policy(spec).prepare(views)


def test_no_noise_and_a_tiny_sigma_put_the_mass_in_the_true_lengths_bin(trace_file):
    df, _ = read_trace(trace_file)
    out, _ = oracle_dist(df, sigma=1e-6, noise=0.0)
    p = out[dist_columns("oracle")].to_numpy()
    rows = np.arange(len(LENGTHS))
    assert p[rows, bin_of(np.array(LENGTHS))] == pytest.approx(np.ones(len(LENGTHS)))
    assert out["score_oracle"].to_numpy() == pytest.approx(-np.array(LENGTHS, float))


def test_the_true_family_with_noisy_parameters(trace_file):
    df, _ = read_trace(trace_file)
    df["len_mu"] = np.log(200.0)
    df["len_sigma"] = 0.9
    exact, info = oracle_dist(df, noise=0.0)
    p = exact[dist_columns("oracle")].to_numpy()
    assert p == pytest.approx(lognormal_on_bins(np.full(len(df), np.log(200.0)), 0.9))
    assert info["family"] == "true (len_mu, len_sigma)" and info["sigma"] == "len_sigma"
    assert exact["score_oracle"].to_numpy() == pytest.approx(np.full(len(df), -200.0))
    noisy, _ = oracle_dist(df, noise=0.3, seed=9)
    eps = np.random.default_rng(9).standard_normal(len(df))
    assert noisy["score_oracle"].to_numpy() == pytest.approx(-200.0 * np.exp(0.3 * eps))
    wide, info = oracle_dist(df, sigma=2.0)  # a given sigma overrides len_sigma
    assert info["sigma"] == 2.0 and wide[dist_columns("oracle")].to_numpy()[:, 0].max() > p[0, 0]


def test_seeded_and_rerun_in_place(trace_file):
    df, _ = read_trace(trace_file)
    a, _ = oracle_dist(df, noise=0.4, seed=1)
    b, _ = oracle_dist(a, noise=0.4, seed=1)  # replaces its own columns
    assert list(b.columns) == list(a.columns)
    pd.testing.assert_frame_equal(a, b)
    c, _ = oracle_dist(df, noise=0.4, seed=2, name="other")
    assert not np.allclose(c["score_other"], a["score_oracle"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sigma", "0"], "--sigma: must be a number > 0"),
        (["--noise", "-1"], "--noise: must be a number >= 0"),
        (["--name", "a,b"], "--name: 'a,b' must be letters and digits"),
        (["--trace", "missing.parquet"], "missing.parquet: no such file"),
    ],
)
def test_bad_input_is_one_line_naming_the_flag(trace_file, tmp_path, capsys, args, message):
    base = {"--trace": str(trace_file), "-o": str(tmp_path / "o.parquet")}
    argv = ["policies", "oracle-dist"]
    for flag, value in base.items():
        if flag not in args:
            argv += [flag, value]
    assert main(argv + args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "o.parquet").exists()


def test_bad_generating_parameters_name_the_column(trace_file, tmp_path, capsys):
    df, meta = read_trace(trace_file)
    half = df.assign(len_mu=1.0)
    with pytest.raises(Exception, match="has len_mu but not len_sigma"):
        oracle_dist(half)
    bad = df.assign(len_mu=1.0, len_sigma=[0.5] * 4 + [0.0] + [0.5] * 4)
    path = tmp_path / "bad.parquet"
    write_trace(bad, path, meta)
    assert main(["policies", "oracle-dist", "--trace", str(path), "-o", str(path)]) == 2
    assert "column len_sigma: row 4 must be a number > 0" in capsys.readouterr().err


def test_a_synthetic_sources_cap_cuts_the_distribution(trace_file, tmp_path, capsys):
    # lmsys-like redraws lengths until they are <= 2048 and records that cap.
    df, _ = read_trace(trace_file)
    df["len_mu"], df["len_sigma"] = np.log(1500.0), 1.0
    path = tmp_path / "capped.parquet"
    write_trace(df, path, {"lmsys_like": {"output_cap_tokens": 2048}})
    assert main(["policies", "oracle-dist", "--trace", str(path), "-o", str(path)]) == 0
    assert "cut at 2048 tokens" in capsys.readouterr().out
    out, meta = read_trace(path)
    p = out[dist_columns("oracle")].to_numpy()
    assert np.allclose(p.sum(axis=1), 1.0)
    assert (p[:, bin_of(2048) + 1 :] == 0).all() and (p[:, bin_of(2048)] > 0).all()
    assert meta["oracle_dist"]["oracle"]["max_tokens"] == 2048
    # the cut is the generator's conditioning: the mass below it keeps its proportions
    uncut = lognormal_on_bins(np.log([1500.0]), 1.0)[0]
    below = slice(1, bin_of(2048))  # bin 0 loses the draws that round to 0 tokens
    assert p[0, below] / p[0, 20] == pytest.approx(uncut[below] / uncut[20])
    # a far-off median with no mass under the cap: all of it at the cap's bin
    far = lognormal_on_bins(np.log([1e7]), 1e-3, max_tokens=100)[0]
    assert far[bin_of(100)] == 1.0
