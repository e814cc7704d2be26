"""Offline stand-ins for the Hugging Face models vLLM's scheduler tests name.

The tests build a `ModelConfig(model="facebook/opt-125m", ...)`, which reads the model's
config.json from the hub. With no network, the harness writes a hub cache of its own
(the layout huggingface_hub reads: models--ORG--NAME/refs/main and snapshots/REV/) with
a config.json per model, made from transformers' own config classes, and points the
tests at it with HF_HUB_CACHE and HF_HUB_OFFLINE=1. No weights and no tokenizer: the
scheduler reads the architecture, the context length and the multimodal layout, never
a token's text (the tests pass token ids).

Each stand-in is transformers' default config for the model's type with the model's
architecture and weight dtype (without a dtype, vLLM asks the hub for the weights'
safetensors headers and, offline, waits 2 s for a retry in every test). What the
scheduler reads from it is the architecture (causal LM, or multimodal with an encoder),
the context length and the multimodal layout; the tests that need exact values set them
themselves (max_model_len, num_blocks, token ids, placeholder ranges). `OPTConfig()` and
`LlavaConfig()` default to the shapes of facebook/opt-125m and llava-1.5-7b.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

REVISION = "0" * 40  # the one snapshot of each stand-in


def _config(kind: str, architecture: str, dtype: str) -> Callable[[], dict[str, Any]]:
    def make() -> dict[str, Any]:
        import transformers

        return getattr(transformers, kind)(architectures=[architecture], dtype=dtype).to_dict()

    return make


# Hub id -> config.json maker, for every model the peer suite's files name.
MODELS: dict[str, Callable[[], dict[str, Any]]] = {
    "facebook/opt-125m": _config("OPTConfig", "OPTForCausalLM", "float16"),
    "facebook/opt-350m": _config("OPTConfig", "OPTForCausalLM", "float16"),
    "llava-hf/llava-1.5-7b-hf": _config("LlavaConfig", "LlavaForConditionalGeneration", "float16"),
    "Qwen/Qwen3-Next-80B-A3B-Instruct": _config(  # named by vLLM 0.33's tests
        "Qwen3NextConfig", "Qwen3NextForCausalLM", "bfloat16"
    ),
    "Qwen/Qwen2.5-VL-3B-Instruct": _config(
        "Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration", "bfloat16"
    ),
}


def write_hub_cache(root: Path, models: dict[str, Callable[[], dict[str, Any]]] = MODELS) -> Path:
    """Write the stand-ins under root (a hub cache directory) and return root."""
    for repo, make in models.items():
        d = root / ("models--" + repo.replace("/", "--"))
        snap = d / "snapshots" / REVISION
        snap.mkdir(parents=True, exist_ok=True)
        (d / "refs").mkdir(exist_ok=True)
        (d / "refs" / "main").write_text(REVISION)
        tmp = snap / "config.json.tmp"
        tmp.write_text(json.dumps(make(), indent=1, sort_keys=True, default=str))
        os.replace(tmp, snap / "config.json")
    return root


def offline_env(hub_cache: Path) -> dict[str, str]:
    """The environment that makes transformers and vLLM read only the stand-ins."""
    return {
        "HF_HUB_CACHE": str(hub_cache),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
