"""Bad input gives one clear PredictorError (printed as one line by the CLI)."""

import pytest

pytest.importorskip("torch")

from predictor.checkpoint import load_predictor  # noqa: E402
from predictor.config import TrainConfig  # noqa: E402
from predictor.errors import PredictorError  # noqa: E402
from predictor.evaluate import evaluate  # noqa: E402
from predictor.train import train  # noqa: E402

TINY = dict(backbone="opt-tiny", max_prompt_tokens=16, vocab_size=300, epochs=1, device="cpu")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, make_trace):
    d = tmp_path_factory.mktemp("m")
    train(TrainConfig(**TINY), make_trace(d / "t.parquet", n=60), d / "model")
    return d / "model"


def test_trace_without_prompt_text(tmp_path, model_dir, make_trace):
    bare = make_trace(tmp_path / "bare.parquet", prompts=False)
    with pytest.raises(PredictorError, match="no prompt text"):
        train(TrainConfig(**TINY), bare, tmp_path / "out")
    with pytest.raises(PredictorError, match="no prompt text"):
        evaluate(model_dir, bare)


def test_missing_model_directory(tmp_path):
    with pytest.raises(PredictorError, match="no such model directory"):
        load_predictor(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PredictorError, match="not a predictor model directory"):
        load_predictor(tmp_path / "empty")


def test_corrupt_checkpoint(tmp_path, model_dir):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(PredictorError, match="corrupt checkpoint"):
        load_predictor(broken)
    (broken / "predictor.json").write_text("{not json")
    with pytest.raises(PredictorError, match="corrupt predictor.json"):
        load_predictor(broken)


def test_unknown_backbone_and_bad_loss(tmp_path, make_trace):
    trace = make_trace(tmp_path / "t.parquet", n=40)
    with pytest.raises(PredictorError, match="unknown backbone"):
        train(TrainConfig(**{**TINY, "backbone": "gpt-17"}), trace, tmp_path / "o")
    with pytest.raises(PredictorError, match="unknown loss"):
        train(TrainConfig(**{**TINY, "loss": "hinge"}), trace, tmp_path / "o")


def test_cli_prints_one_line(tmp_path, capsys, make_trace):
    """Through `ltrsched`, once the lead has registered the predictor commands."""
    from ltrsched import cli

    if ("predictor.cli", "app", "predictor") not in cli._SUBCOMMANDS or (
        ("predictor.errors", "PredictorError") not in cli._USER_ERRORS
    ):
        pytest.skip("ltrsched predictor is not registered in ltrsched.cli yet")
    code = cli.main(
        [
            "predictor",
            "eval",
            "--model",
            str(tmp_path / "nowhere"),
            "--trace",
            str(make_trace(tmp_path / "t.parquet", n=20)),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "no such model directory" in err
