"""A trained predictor on disk, and back.

A model directory holds:
  model.safetensors   the ranker's weights (backbone and head)
  config.json         the backbone's Hugging Face config
  tokenizer.json ...  the backbone's tokenizer (trained BPE for an OPT from config)
  hparams.json        the TrainConfig it was trained with
  predictor.json      what scoring needs (pooling, loss and bucket edges, template, prompt
                      cut), provenance (the training trace's source, tokenizer, rows), and
                      train_marginal: the training lengths' counts per lengthdist bin, the
                      prompt-blind baseline that `eval` scores distributions against
  train_log.json      loss per step, validation tau per epoch
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from predictor.backbone import offline
from predictor.errors import PredictorError
from predictor.losses import LossSpec, Objective
from predictor.tokenizer import load_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from predictor.model import LengthRanker

FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
PREDICTOR_JSON = "predictor.json"


@dataclass
class Predictor:
    """A loaded predictor: the model, its tokenizer, and how to read its outputs."""

    model: LengthRanker
    tokenizer: PreTrainedTokenizerBase
    objective: Objective
    info: dict[str, Any]

    @property
    def template(self) -> str:
        return self.info["template"]

    @property
    def max_prompt_tokens(self) -> int:
        return int(self.info["max_prompt_tokens"])


def save_predictor(out_dir: Path, predictor: Predictor) -> None:
    """Write the model directory (weights last, so a half-written one fails to load)."""
    from safetensors.torch import save_model

    out_dir.mkdir(parents=True, exist_ok=True)
    predictor.model.backbone.config.save_pretrained(out_dir)
    predictor.tokenizer.save_pretrained(out_dir)
    info = {
        "format_version": FORMAT_VERSION,
        **predictor.info,
        "loss": predictor.objective.spec.to_json(),
        "label_bin_tokens": predictor.objective.label_bin_tokens,
    }
    (out_dir / PREDICTOR_JSON).write_text(json.dumps(info, indent=2) + "\n")
    tmp = out_dir / f".{WEIGHTS}.tmp"
    save_model(predictor.model, str(tmp))
    tmp.replace(out_dir / WEIGHTS)


def check_model_dir(model_dir: str | Path) -> None:
    """PredictorError unless model_dir holds what save_predictor writes; no torch needed,
    so commands can refuse a wrong path before spending seconds importing it."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise PredictorError(f"{model_dir}: no such model directory")
    for name in (PREDICTOR_JSON, WEIGHTS, "config.json"):
        if not (model_dir / name).is_file():
            raise PredictorError(f"{model_dir}: not a predictor model directory (no {name})")


def load_predictor(model_dir: str | Path, device: str = "cpu") -> Predictor:
    """Load a model directory written by save_predictor; PredictorError if it is not one."""
    model_dir = Path(model_dir)
    check_model_dir(model_dir)
    try:
        info = json.loads((model_dir / PREDICTOR_JSON).read_text())
        spec = LossSpec.from_json(info["loss"])
        objective = Objective(spec, int(info["label_bin_tokens"]))
        pooling = info["pooling"]
    except (ValueError, KeyError, TypeError) as e:
        raise PredictorError(f"{model_dir}: corrupt {PREDICTOR_JSON} ({e})") from None
    if info.get("format_version") != FORMAT_VERSION:
        raise PredictorError(
            f"{model_dir}: model format {info.get('format_version')!r}, "
            f"this version reads {FORMAT_VERSION}"
        )

    offline()
    from safetensors import SafetensorError
    from safetensors.torch import load_model
    from transformers import AutoConfig, AutoModel

    from predictor.model import LengthRanker

    try:
        config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError) as e:
        raise PredictorError(f"{model_dir}: corrupt config.json ({e})") from None
    model = LengthRanker(AutoModel.from_config(config), pooling, spec.num_outputs)
    try:
        load_model(model, str(model_dir / WEIGHTS), strict=True, device=str(device))
    except (SafetensorError, RuntimeError, OSError, ValueError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise PredictorError(f"{model_dir}: corrupt checkpoint {WEIGHTS} ({first})") from None
    model.to(device).eval()
    return Predictor(model, load_tokenizer(model_dir), objective, info)
