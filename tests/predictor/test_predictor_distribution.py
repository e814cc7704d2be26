"""The distributional head (--loss nll / quantile): loss, distributions out, eval figures."""

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from policies.lengthdist import (  # noqa: E402
    BIN_EDGES,
    NUM_BINS,
    dist_columns,
    from_counts,
    histogram,
    quantile_tokens,
)
from predictor.backbone import build_from_config, resolve_backbone  # noqa: E402
from predictor.checkpoint import Predictor, load_predictor, save_predictor  # noqa: E402
from predictor.config import TrainConfig  # noqa: E402
from predictor.errors import PredictorError  # noqa: E402
from predictor.evaluate import evaluate  # noqa: E402
from predictor.losses import (  # noqa: E402
    QUANTILE_LEVELS,
    Objective,
    bin_targets,
    log_quantiles,
    nll,
    parse_loss,
    quantiles_to_distribution,
)
from predictor.metrics import central_interval_bins, distribution_metrics  # noqa: E402
from predictor.model import LengthRanker  # noqa: E402
from predictor.scoring import distributions, score_prompts, score_trace  # noqa: E402
from predictor.tokenizer import train_bpe_tokenizer  # noqa: E402
from predictor.train import train  # noqa: E402
from traces.io import read_trace  # noqa: E402

TINY = dict(
    backbone="opt-tiny",
    max_prompt_tokens=32,
    vocab_size=300,
    batch_size=16,
    lr=3e-3,
    device="cpu",
    threads=1,
    seed=0,
)


def test_nll_matches_hand_computed_value():
    # Lengths 1, 9 and 300 fall in bins 0 ([1, 2)), 7 ([8, 10)) and 20 ([235, 304)).
    assert (BIN_EDGES[[0, 1, 7, 8, 20, 21]] == [1, 2, 8, 10, 235, 304]).all()
    logits = torch.zeros(3, NUM_BINS)
    logits[0, 0] = 2.0  # right bin, logit 2
    logits[2, 19] = 1.0  # one bin too short
    others = NUM_BINS - 1
    expected = (
        (math.log(others + math.e**2) - 2.0)
        + math.log(NUM_BINS)
        + math.log(others + math.e)  # the true bin's logit is 0
    ) / 3
    lengths = np.array([1, 9, 300])
    assert nll(logits, lengths).item() == pytest.approx(expected, abs=1e-5)
    assert Objective(parse_loss("nll")).loss(logits, lengths).item() == pytest.approx(
        expected, abs=1e-5
    )
    # smooth=0.2: row 0 (an end bin) puts 0.8 on bin 0 and 0.2 on bin 1; rows 1 and 2 split
    # 0.2 between both neighbours. -sum t log p = lse - sum t * logit.
    lse = [math.log(others + math.e**2), math.log(NUM_BINS), math.log(others + math.e)]
    smoothed = ((lse[0] - 0.8 * 2.0) + lse[1] + (lse[2] - 0.1 * 1.0)) / 3
    assert nll(logits, lengths, smooth=0.2).item() == pytest.approx(smoothed, abs=1e-5)


def test_bin_targets_share_the_smoothing_with_neighbours():
    t = bin_targets(np.array([1, 9, 40000]), smooth=0.2)
    np.testing.assert_allclose(t.sum(axis=1), 1.0)
    assert (t[0, 0], t[0, 1]) == pytest.approx((0.8, 0.2))
    assert (t[1, 6], t[1, 7], t[1, 8]) == pytest.approx((0.1, 0.8, 0.1))
    assert (t[2, -1], t[2, -2]) == pytest.approx((0.8, 0.2))  # past MAX_TOKENS: last bin


def test_parse_distributional_losses():
    spec = parse_loss("nll")
    assert (spec.num_outputs, spec.distributional, spec.describe()) == (NUM_BINS, True, "nll")
    assert parse_loss("nll:smooth=0.1").describe() == "nll:smooth=0.1"
    q = parse_loss("quantile")
    assert q.quantiles == QUANTILE_LEVELS and q.num_outputs == len(QUANTILE_LEVELS)
    assert not parse_loss("listmle").distributional
    for bad in ("nll:smooth=1", "nll:smooth=x", "nll:buckets=3", "quantile:smooth=0.1"):
        with pytest.raises(PredictorError):
            parse_loss(bad)
    # a spec survives predictor.json
    for s in ("nll:smooth=0.1", "quantile"):
        assert type(parse_loss(s)).from_json(parse_loss(s).to_json()) == parse_loss(s)


def test_median_reads_the_cdf_linearly_in_log_tokens():
    p = np.zeros((2, NUM_BINS))
    p[0, 7] = 1.0  # all in [8, 10): the median is the geometric midpoint
    p[1, 3], p[1, 9] = 0.5, 0.5  # the CDF reaches 0.5 at the top of bin 3 ([4, 5))
    np.testing.assert_allclose(quantile_tokens(p, 0.5), [math.sqrt(80), 5.0])
    # minus the median is the score: more mass on short lengths = higher score
    p[1, 3], p[1, 9] = 0.6, 0.4  # median inside bin 3: 5/6 of the way up, in log tokens
    assert quantile_tokens(p, 0.5)[1] == pytest.approx(4 * (5 / 4) ** (5 / 6))
    logits = torch.log(torch.tensor(p) + 1e-9)
    s = Objective(parse_loss("nll")).score(logits)
    assert s[1] > s[0]
    np.testing.assert_allclose(-s.numpy(), quantile_tokens(p, 0.5), rtol=1e-6)


def test_quantile_head_is_monotone_and_its_histogram_passes_through_its_quantiles():
    out = torch.tensor([[1.0, -3.0, 0.0, 2.0, -1.0]])
    q = log_quantiles(out)
    assert (q[:, 1:] > q[:, :-1]).all()
    # quantiles exactly at the edges 8, 17, 38, 83, 181 (bins 7, 10, 13, 16, 19 start there)
    log_q = np.log(np.array([[8.0, 17.0, 38.0, 83.0, 181.0]]))
    p = quantiles_to_distribution(log_q, QUANTILE_LEVELS)
    assert p.shape == (1, NUM_BINS) and (p >= 0).all()
    assert p.sum() == pytest.approx(1.0)
    cdf = np.cumsum(p[0])
    np.testing.assert_allclose(cdf[[6, 9, 12, 15, 18]], QUANTILE_LEVELS, atol=1e-6)
    # the score is minus the median in tokens
    s = Objective(parse_loss("quantile")).score(torch.tensor([[math.log(8.0), 0.0, 0.0, 0, 0]]))
    expected_median = math.exp(math.log(8.0) + 2 * math.log(2.0))  # two softplus(0) steps
    assert s.item() == pytest.approx(-expected_median)


def test_untrained_heads_start_at_the_training_marginal():
    lengths = np.array([3, 3, 9, 20, 20, 20, 150, 700])
    features = torch.randn(4, 8)
    for loss in ("nll", "quantile"):
        objective = Objective(parse_loss(loss))
        head = torch.nn.Linear(8, objective.spec.num_outputs)
        objective.init_head(head, lengths)
        with torch.no_grad():
            head.weight.zero_()
            out = head(features)
        if loss == "nll":
            marginal = from_counts(histogram(lengths), 0.5)
            np.testing.assert_allclose(objective.distribution(out), np.tile(marginal, (4, 1)))
        else:
            expected = np.quantile(np.log(lengths), QUANTILE_LEVELS)
            np.testing.assert_allclose(log_quantiles(out)[0].numpy(), expected, rtol=1e-5)


def test_distribution_metrics_against_hand_computed_values():
    p = np.zeros((3, NUM_BINS))
    assert (BIN_EDGES[[7, 8, 9, 10, 11, 19, 20]] == [8, 10, 13, 17, 23, 181, 235]).all()
    p[0, 7], p[0, 8] = 0.5, 0.5  # A: [8, 10) and [10, 13); true 9 (bin 7)
    p[1, 0], p[1, 8], p[1, 10] = 0.2, 0.3, 0.5  # B: true 20 (bin 10, [17, 23))
    p[2, 7], p[2, 19] = 0.9, 0.1  # C: true 200 (bin 19, [181, 235))
    y = np.array([9, 20, 200])
    m = distribution_metrics(p, y)
    # CRPS = sum_k (F_k - 1[b <= k])^2 (e_{k+1} - e_k)
    crps_a = (0.5 - 1) ** 2 * (10 - 8)
    # B: bins 0..7 at F = 0.2, bins 8 and 9 at F = 0.5
    crps_b = 0.2**2 * (10 - 1) + 0.5**2 * (13 - 10) + 0.5**2 * (17 - 13)
    crps_c = 0.9**2 * (181 - 8)  # bins 7..18 at F = 0.9
    assert m["crps_tokens"] == pytest.approx((crps_a + crps_b + crps_c) / 3)
    assert m["log_lik"] == pytest.approx((math.log(0.5) * 2 + math.log(0.1)) / 3)
    widths_true = np.array([10 - 8, 23 - 17, 235 - 181])
    assert m["log_density"] == pytest.approx(np.mean(np.log([0.5, 0.5, 0.1] / widths_true)))
    # 50%: A bins 7..8, B bins 8..10, C bin 7 only (F_7 = 0.9 >= 0.75): C is missed
    lo, hi = central_interval_bins(p, 0.5)
    assert lo.tolist() == [7, 8, 7] and hi.tolist() == [8, 10, 7]
    assert m["coverage_50"] == pytest.approx(2 / 3)
    assert m["mass_50"] == pytest.approx((1.0 + 0.8 + 0.9) / 3)
    assert m["width_50_tokens"] == pytest.approx(((13 - 8) + (23 - 10) + (10 - 8)) / 3)
    # 90%: B from bin 0 (F_0 = 0.2 >= 0.05); C up to bin 19 (F_19 = 1 >= 0.95): all covered
    lo, hi = central_interval_bins(p, 0.9)
    assert lo.tolist() == [7, 0, 7] and hi.tolist() == [8, 10, 19]
    assert m["coverage_90"] == 1.0 and m["mass_90"] == pytest.approx(1.0)
    # a perfect forecast: CRPS 0, log-lik 0
    sure = np.zeros((1, NUM_BINS))
    sure[0, 7] = 1.0
    best = distribution_metrics(sure, np.array([9]))
    assert (best["crps_tokens"], best["log_lik"], best["coverage_50"]) == (0.0, 0.0, 1.0)


@pytest.fixture(scope="module")
def trained_nll(tmp_path_factory, make_trace):
    d = tmp_path_factory.mktemp("nll")
    trace = make_trace(d / "train.parquet", n=320, seed=1)
    test = make_trace(d / "test.parquet", n=120, seed=2)
    train(TrainConfig(epochs=4, loss="nll", **TINY), trace, d / "model")
    return d, test


def test_nll_training_drives_loss_down_and_beats_the_marginal(trained_nll):
    d, test = trained_nll
    log = json.loads((d / "model" / "train_log.json").read_text())
    losses = [s["loss"] for s in log["steps"]]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert all("val_log_lik" in e for e in log["epochs"])
    info = json.loads((d / "model" / "predictor.json").read_text())
    assert sum(info["train_marginal"]["bin_counts"]) == 288  # the first 90% of 320 rows
    result = evaluate(d / "model", test)
    fit, base = result["distribution"]["predictor"], result["distribution"]["marginal"]
    assert result["predictor"]["kendall_tau"] > 0.6  # tau of minus the median
    assert fit["log_lik"] > base["log_lik"] + 1.0
    assert fit["crps_tokens"] < 0.5 * base["crps_tokens"]
    assert fit["width_90_tokens"] < base["width_90_tokens"]
    assert fit["coverage_90"] > 0.8
    # the baseline is the saved training histogram, whatever the test trace
    train_lengths = read_trace(d / "train.parquet")[0]["output_tokens"].to_numpy()[:288]
    marginal = from_counts(histogram(train_lengths), 0.5)
    assert base == distribution_metrics(
        np.tile(marginal, (120, 1)), read_trace(test)[0]["output_tokens"].to_numpy()
    )


def test_score_writes_distributions_that_sum_to_one(trained_nll, tmp_path):
    d, test = trained_nll
    out = tmp_path / "scored.parquet"
    assert score_trace(d / "model", test, out, name="dist") == "score_dist"
    df, meta = read_trace(out)
    cols = dist_columns("dist")
    assert all(df[c].dtype == np.float64 for c in cols)
    probs = df[cols].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    predictor = load_predictor(d / "model")
    np.testing.assert_array_equal(probs, distributions(predictor, df["prompt"].tolist()))
    np.testing.assert_allclose(df["score_dist"], -quantile_tokens(probs, 0.5), rtol=1e-12)
    assert meta["scores"]["dist"]["distribution"] and meta["scores"]["dist"]["loss"] == "nll"
    # scoring again under the same name replaces the columns, not adds to them
    score_trace(d / "model", out, out, name="dist")
    again, _ = read_trace(out)
    assert list(again.columns) == list(df.columns)


def test_ranking_models_have_no_distribution(tmp_path, make_trace):
    trace = make_trace(tmp_path / "t.parquet", n=48)
    train(TrainConfig(epochs=1, loss="listmle", **{**TINY, "list_size": 8}), trace, tmp_path / "m")
    score_trace(tmp_path / "m", trace, tmp_path / "s.parquet", name="rank")
    df, _ = read_trace(tmp_path / "s.parquet")
    assert not any(c.startswith("dist_") for c in df.columns)
    assert "distribution" not in evaluate(tmp_path / "m", trace)
    with pytest.raises(PredictorError, match="no distribution"):
        distributions(load_predictor(tmp_path / "m"), ["go now"])


@pytest.mark.parametrize("loss", ["nll:smooth=0.1", "quantile"])
def test_save_load_score_round_trip_gives_identical_numbers(loss, tmp_path):
    torch.manual_seed(0)
    prompts = ["go " * k + "now" for k in range(1, 9)]
    tokenizer = train_bpe_tokenizer(prompts, 300, 32)
    backbone = build_from_config(resolve_backbone("opt-tiny"), tokenizer, 32)
    objective = Objective(parse_loss(loss))
    model = LengthRanker(backbone, "last", objective.spec.num_outputs)
    objective.init_head(model.head, np.array([5, 20, 20, 90, 400]))
    info = {
        "backbone": "opt-tiny",
        "pooling": "last",
        "template": "{prompt}",
        "max_prompt_tokens": 32,
        "trace": {},
    }
    before = Predictor(model, tokenizer, objective, info)
    probs, scores = distributions(before, prompts, 4), score_prompts(before, prompts, 4)
    save_predictor(tmp_path / "m", before)
    after = load_predictor(tmp_path / "m")
    assert after.objective.spec == objective.spec
    np.testing.assert_array_equal(distributions(after, prompts, 4), probs)
    np.testing.assert_array_equal(score_prompts(after, prompts, 4), scores)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)


def test_cli_trains_scores_and_evaluates_a_distributional_model(tmp_path, make_trace):
    from typer.testing import CliRunner

    from predictor.cli import app

    trace = make_trace(tmp_path / "t.parquet", n=96, seed=4)
    runner = CliRunner()
    common = ["--device", "cpu", "--threads", "1"]
    result = runner.invoke(
        app,
        ["train", "--trace", str(trace), "--out", str(tmp_path / "m"), "--loss", "nll"]
        + ["--backbone", "opt-tiny", "--epochs", "1", "--max-prompt-tokens", "16"]
        + ["--vocab-size", "300", "--batch-size", "16"]
        + common,
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        ["score", "--model", str(tmp_path / "m"), "--trace", str(trace)]
        + ["-o", str(tmp_path / "s.parquet"), "--name", "n"],
    )
    assert result.exit_code == 0, result.output
    df, _ = read_trace(tmp_path / "s.parquet")
    assert "score_n" in df.columns and set(dist_columns("n")) <= set(df.columns)
    result = runner.invoke(
        app, ["eval", "--model", str(tmp_path / "m"), "--trace", str(trace), "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    for key in ("log_lik", "crps_tokens", "coverage_50", "coverage_90"):
        assert key in out["distribution"]["predictor"] and key in out["distribution"]["marginal"]
    result = runner.invoke(app, ["eval", "--model", str(tmp_path / "m"), "--trace", str(trace)])
    assert result.exit_code == 0 and "train marginal" in result.stdout
