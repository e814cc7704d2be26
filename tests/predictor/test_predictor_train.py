"""Training, saving, loading and scoring, on tiny models and a learnable synthetic task."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from predictor.backbone import build_from_config, resolve_backbone  # noqa: E402
from predictor.checkpoint import Predictor, load_predictor, save_predictor  # noqa: E402
from predictor.config import TrainConfig  # noqa: E402
from predictor.evaluate import evaluate  # noqa: E402
from predictor.losses import Objective, parse_loss  # noqa: E402
from predictor.model import LengthRanker, collate, forward_grouped  # noqa: E402
from predictor.scoring import score_prompts, score_trace  # noqa: E402
from predictor.tokenizer import train_bpe_tokenizer  # noqa: E402
from predictor.train import train  # noqa: E402
from traces.io import read_trace  # noqa: E402

TINY = dict(
    backbone="opt-tiny",
    max_prompt_tokens=32,
    vocab_size=300,
    list_size=16,
    batch_size=16,
    lr=3e-3,
    device="cpu",
    threads=1,
    seed=0,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, make_trace):
    d = tmp_path_factory.mktemp("predictor")
    trace = make_trace(d / "train.parquet", n=320, seed=1)
    test = make_trace(d / "test.parquet", n=120, seed=2)
    summary = train(TrainConfig(epochs=4, **TINY), trace, d / "model")
    return d, summary, test


def test_training_drives_loss_down_and_tau_up(trained):
    d, summary, test = trained
    log = json.loads((d / "model" / "train_log.json").read_text())
    losses = [s["loss"] for s in log["steps"]]
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    taus = [e["val_kendall_tau"] for e in log["epochs"]]
    assert taus[-1] > 0.6 and taus[-1] > taus[0] - 0.05
    result = evaluate(d / "model", test)
    assert result["predictor"]["kendall_tau"] > 0.6
    assert abs(result["prompt_length"]["kendall_tau"]) < 0.2  # prompt_tokens is noise here


def test_model_directory_holds_weights_config_and_provenance(trained):
    d, summary, _ = trained
    model = d / "model"
    for name in (
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "hparams.json",
        "predictor.json",
        "train_log.json",
    ):
        assert (model / name).is_file(), name
    info = json.loads((model / "predictor.json").read_text())
    assert info["trace"]["tokenizer"] == "words" and info["trace"]["file"] == "train.parquet"
    assert json.loads((model / "hparams.json").read_text())["backbone"] == "opt-tiny"
    assert summary["rows_val"] == 32  # the last 10% of 320 rows


def test_score_trace_adds_a_column_matching_the_model(trained, tmp_path):
    d, _, test = trained
    out = tmp_path / "scored.parquet"
    column = score_trace(d / "model", test, out, name="tiny")
    column2 = score_trace(d / "model", out, out, name="again", batch_size=7)
    df, meta = read_trace(out)
    assert (column, column2) == ("score_tiny", "score_again")
    np.testing.assert_allclose(df["score_tiny"], df["score_again"], rtol=1e-4, atol=1e-5)
    direct = score_prompts(load_predictor(d / "model"), df["prompt"].tolist())
    np.testing.assert_allclose(df["score_tiny"], direct, rtol=1e-4, atol=1e-5)
    assert set(meta["scores"]) == {"tiny", "again"}


@pytest.mark.parametrize("loss", ["mse", "classify:buckets=4", "pairwise"])
def test_baseline_losses_train_and_rank(loss, tmp_path, make_trace):
    trace = make_trace(tmp_path / "t.parquet", n=160, seed=3)
    summary = train(TrainConfig(epochs=2, loss=loss, **TINY), trace, tmp_path / "m")
    assert summary["steps"] == 2 * (144 // 16)
    predictor = load_predictor(tmp_path / "m")
    assert predictor.objective.spec.kind == loss.split(":")[0]


def test_save_load_score_round_trip(tmp_path):
    torch.manual_seed(0)
    prompts = ["go " * k + "now" for k in range(1, 9)]
    tokenizer = train_bpe_tokenizer(prompts, 300, 32)
    backbone = build_from_config(resolve_backbone("opt-tiny"), tokenizer, 32)
    spec = parse_loss("listmle")
    info = {
        "backbone": "opt-tiny",
        "pooling": "last",
        "template": "{prompt}",
        "max_prompt_tokens": 32,
        "trace": {},
    }
    before = Predictor(LengthRanker(backbone, "last"), tokenizer, Objective(spec), info)
    scores = score_prompts(before, prompts, batch_size=3)
    save_predictor(tmp_path / "m", before)
    after = load_predictor(tmp_path / "m")
    np.testing.assert_allclose(
        score_prompts(after, prompts, batch_size=8), scores, rtol=1e-5, atol=1e-6
    )


def test_grouped_forward_equals_one_padded_batch():
    torch.manual_seed(0)
    prompts = ["go " * k + "now" for k in range(1, 30, 3)]
    tokenizer = train_bpe_tokenizer(prompts, 300, 64)
    model = LengthRanker(build_from_config(resolve_backbone("opt-tiny"), tokenizer, 64), "last")
    model.eval()
    ids = tokenizer(prompts)["input_ids"]
    with torch.no_grad():
        whole = model(*collate(ids, tokenizer.pad_token_id))
        grouped = forward_grouped(model, ids, tokenizer.pad_token_id, max_tokens=40)
    torch.testing.assert_close(grouped, whole, rtol=1e-4, atol=1e-5)


def test_local_pretrained_directory_is_used_as_it_is(tmp_path, make_trace):
    """A Hugging Face directory (here an OPT causal LM saved by transformers) loads with
    its own weights and tokenizer, offline."""
    from transformers import OPTConfig, OPTForCausalLM

    from predictor.backbone import OPT_CONFIGS

    torch.manual_seed(0)
    tokenizer = train_bpe_tokenizer(["go " * k + "now" for k in range(1, 20)], 300, 32)
    lm = OPTForCausalLM(
        OPTConfig(vocab_size=len(tokenizer), pad_token_id=0, **OPT_CONFIGS["opt-tiny"])
    )
    lm.save_pretrained(tmp_path / "hf-opt")
    tokenizer.save_pretrained(tmp_path / "hf-opt")
    trace = make_trace(tmp_path / "t.parquet", n=64)
    train(
        TrainConfig(**{**TINY, "backbone": str(tmp_path / "hf-opt"), "epochs": 1}),
        trace,
        tmp_path / "m",
    )
    predictor = load_predictor(tmp_path / "m")
    assert predictor.info["backbone"] == "hf-opt" and predictor.info["backbone_pretrained"]
    assert predictor.model.pooling == "last"
    # the weights are the directory's own, not a fresh initialisation
    from predictor.backbone import load_pretrained

    backbone, _ = load_pretrained(tmp_path / "hf-opt")
    for name, value in lm.model.state_dict().items():
        torch.testing.assert_close(backbone.state_dict()[name], value)


def test_init_from_continues_a_trained_model(trained, tmp_path):
    d, _, test = trained
    cfg = TrainConfig(**{**TINY, "epochs": 1, "init_from": str(d / "model")})
    train(cfg, d / "train.parquet", tmp_path / "more")
    info = json.loads((tmp_path / "more" / "predictor.json").read_text())
    assert info["init_from"] == "model" and info["backbone"] == "opt-tiny"
    assert evaluate(tmp_path / "more", test)["predictor"]["kendall_tau"] > 0.6
