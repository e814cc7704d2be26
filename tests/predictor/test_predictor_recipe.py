"""`predictor train` defaults to a recipe that suits the device, keeps the paper's one flag
away, and says after its first steps how long the rest will take."""

import json

import pytest
from rich.console import Console

from ltrsched.cli import main
from predictor.config import RECIPES, TrainConfig, default_recipe
from predictor.eta import Eta, format_duration

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from predictor.train import train  # noqa: E402

SMALL = ["--backbone", "opt-tiny", "--vocab-size", "300", "--list-size", "16", "--threads", "1"]


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_eta_is_time_per_step_times_steps_left():
    clock = FakeClock()
    eta = Eta(total_steps=825, clock=clock)
    lines = []
    for _ in range(5):
        clock.now += 22.5  # a step of the paper's recipe on a loaded 2-core machine
        lines.append(eta.step())
    assert lines[:4] == [None] * 4
    assert lines[4] == "step 5/825: about 5 h 7 min left"  # 820 steps x 22.5 s = 18,450 s
    clock.now += 22.5
    assert eta.step() is None and eta.left_s() == pytest.approx(819 * 22.5)
    assert [format_duration(s) for s in (12.4, 250, 3600 * 3 + 60 * 12)] == [
        "12 s",
        "4 min 10 s",
        "3 h 12 min",
    ]
    short = Eta(total_steps=3, clock=clock)
    assert [short.step() for _ in range(3)][2].startswith("step 3/3: about 0 s")


def test_the_default_recipe_follows_the_device():
    assert default_recipe(cuda_available=True) == "paper"
    assert default_recipe(cuda_available=False) == "cpu"
    paper = RECIPES["paper"]
    assert (paper.max_prompt_tokens, paper.epochs) == (2048, 5)  # DESIGN.md's recipe
    assert (paper.max_prompt_tokens, paper.epochs, paper.pretrained_lr) == (
        TrainConfig.max_prompt_tokens,
        TrainConfig.epochs,
        TrainConfig.lr,
    )
    cpu = RECIPES["cpu"]
    assert (cpu.max_prompt_tokens, cpu.epochs, cpu.pretrained_lr) == (128, 2, 1e-4)


def test_train_without_flags_on_a_cpu_takes_the_cpu_recipe(tmp_path, make_trace, capsys):
    trace = make_trace(tmp_path / "t.parquet", n=160, seed=3)  # 9 lists of 16 per epoch
    rc = main(
        [
            "predictor",
            "train",
            "--trace",
            str(trace),
            "--out",
            str(tmp_path / "cpu"),
            "--device",
            "cpu",
            *SMALL,
        ]
    )
    err = capsys.readouterr().err
    assert rc == 0, err
    h = json.loads((tmp_path / "cpu" / "hparams.json").read_text())
    assert (h["recipe"], h["max_prompt_tokens"], h["epochs"]) == ("cpu", 128, 2)
    assert "recipe cpu" in err and "--recipe paper" in err
    assert "step 5/" in err and "left (epoch 1 of 2)" in err
    # The paper's recipe is one flag away; a flag given still wins over the recipe.
    rc = main(
        [
            "predictor",
            "train",
            "--trace",
            str(trace),
            "--out",
            str(tmp_path / "paper"),
            "--device",
            "cpu",
            "--recipe",
            "paper",
            "--epochs",
            "1",
            *SMALL,
        ]
    )
    assert rc == 0
    h = json.loads((tmp_path / "paper" / "hparams.json").read_text())
    assert (h["recipe"], h["max_prompt_tokens"], h["epochs"]) == ("paper", 2048, 1)
    capsys.readouterr()
    assert (
        main(
            [
                "predictor",
                "train",
                "--trace",
                str(trace),
                "--out",
                str(tmp_path / "x"),
                "--recipe",
                "fast",
            ]
        )
        == 2
    )
    assert capsys.readouterr().err == "error: --recipe fast: use one of paper, cpu\n"


def test_train_prints_the_time_left_by_its_clock(tmp_path, make_trace):
    trace = make_trace(tmp_path / "t.parquet", n=200, seed=3)
    clock = FakeClock()
    console = Console(record=True, width=200, force_terminal=False)

    def ticking():
        clock.now += 1.0  # every reading of the clock is one more second
        return clock.now

    cfg = TrainConfig(
        backbone="opt-tiny",
        vocab_size=300,
        list_size=16,
        epochs=3,
        max_prompt_tokens=32,
        device="cpu",
        threads=1,
    )
    train(cfg, trace, tmp_path / "m", console=console, clock=ticking)
    text = console.export_text()
    total = (180 // 16) * 3  # 180 training rows, lists of 16, 3 epochs
    first = next(line for line in text.splitlines() if line.startswith("step 5/"))
    assert first.startswith(f"step 5/{total}: about ") and first.endswith("(epoch 1 of 3)")
