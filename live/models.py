"""Model directories live mode can run without a download.

vLLM builds a model from its config.json alone when given load_format="dummy" (random
weights) and skip_tokenizer_init=True; a tiny Llama is enough to exercise the whole
serving path (scheduler, KV cache, sampling) on a CPU in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from live.errors import LiveError

TINY_LLAMA: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 256,
    "intermediate_size": 688,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "vocab_size": 32000,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5,
    "hidden_act": "silu",
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    # float32: every CPU runs it; bf16 kernels need AVX512-BF16 or AMX to be fast.
    "torch_dtype": "float32",
}


def write_tiny_llama(directory: str | Path, **overrides: Any) -> Path:
    """Write a tiny Llama config.json (hidden 256, 2 layers, 4 heads) into directory."""
    unknown = set(overrides) - set(TINY_LLAMA)
    if unknown:
        raise LiveError(f"tiny model: unknown config key(s) {', '.join(sorted(unknown))}")
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({**TINY_LLAMA, **overrides}, indent=2) + "\n")
    return path


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.txt", "vocab.json", "merges.txt", "tokenizer.model")


def copy_tokenizer(src: str | Path, model_dir: str | Path) -> int:
    """Give a model directory the tokenizer of src (a predictor or model directory) and a
    vocab_size that covers it, so prompts are text the predictor can read; returns the
    tokenizer's size."""
    import shutil

    src, dst = Path(src), Path(model_dir)
    if not (src / "tokenizer.json").is_file():
        raise LiveError(f"--tokenizer-from {src}: no tokenizer.json in it")
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)
    from tokenizers import Tokenizer

    size = Tokenizer.from_file(str(src / "tokenizer.json")).get_vocab_size(with_added_tokens=True)
    cfg = read_model_config(dst)
    cfg["vocab_size"] = max(int(cfg.get("vocab_size", 0)), size)
    (dst / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    return size


def read_model_config(directory: str | Path) -> dict[str, Any]:
    """The model's config.json, or LiveError saying what is missing."""
    path = Path(directory)
    if not path.is_dir():
        raise LiveError(f"--model {directory}: no such directory")
    cfg = path / "config.json"
    if not cfg.is_file():
        raise LiveError(f"--model {directory}: no config.json in it (make one with "
                        "`ltrsched live tiny-model DIR`)")
    try:
        data = json.loads(cfg.read_text())
    except ValueError as e:
        raise LiveError(f"{cfg}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise LiveError(f"{cfg}: expected a JSON object")
    return data


def has_tokenizer(directory: str | Path) -> bool:
    """Whether the model directory ships a tokenizer (tokenizer.json or a SentencePiece model)."""
    path = Path(directory)
    return (path / "tokenizer.json").is_file() or (path / "tokenizer.model").is_file()


def has_weights(directory: str | Path) -> bool:
    path = Path(directory)
    return any(path.glob("*.safetensors")) or any(path.glob("*.bin")) or any(path.glob("*.pt"))
