"""Model architectures for the roofline: what a Hugging Face `config.json` says about a
decoder's shapes, and the parameters each tensor-parallel rank holds, reads and multiplies.

`load_model_config` takes a config.json (a file, or a directory holding one) or the name of
one shipped in sim/data/models/ (architecture fields only, each with its `_source`). It
reads the Llama family's keys (Llama, Mistral, Mixtral, Qwen2/3 and their MoE variants,
Llama-4's `text_config`), grouped-query attention with an explicit `head_dim`, gated
(SwiGLU) MLPs, routed and shared experts, tied embeddings, fp8 quantization configs.

Per-rank counts follow vLLM's Megatron-style sharding: attention heads, MLP and expert
widths and the vocabulary are split over `tp` ranks; KV heads are split too, or replicated
when there are fewer KV heads than ranks; norms and the MoE router are replicated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from sim.errors import SimError

DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4, "fp8": 1}
_TORCH_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32"}
# model_type values whose MLP is gated (gate, up and down projections): the Llama family.
GATED_MODEL_TYPES = (
    "llama",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen3",
    "qwen2_moe",
    "qwen3_moe",
    "llama4_text",
    "llama4",
    "gemma",
    "gemma2",
    "phi3",
    "granite",
    "olmo2",
    "exaone",
    "internlm2",
    "yi",
)
_REQUIRED = ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")


@dataclass(frozen=True)
class ModelArch:
    """A decoder's shapes, in the config.json's own units (not sharded)."""

    name: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int  # dense MLP width; 0 when every layer is MoE
    vocab_size: int
    tie_word_embeddings: bool
    gated_mlp: bool
    dtype: str  # activations and KV cache: bf16 or fp16
    weight_dtype: str  # linear layers' weights: the dtype above, or fp8 when quantized
    max_position_embeddings: int | None = None
    num_experts: int = 0  # routed experts per MoE layer; 0 = dense
    experts_per_token: int = 0
    moe_intermediate_size: int = 0
    shared_expert_intermediate_size: int = 0
    num_moe_layers: int = 0
    # Weights loaded but off the per-token path (a multimodal model's vision tower).
    other_params: int = 0
    source: str = ""

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def num_dense_layers(self) -> int:
        return self.num_layers - self.num_moe_layers

    def validate_tp(self, tp: int) -> None:
        """vLLM's rules: tp splits the attention heads evenly; KV heads split evenly or are
        replicated (tp a multiple of them)."""
        if tp < 1:
            raise SimError(f"--tp: must be >= 1, got {tp}")
        if self.num_heads % tp:
            raise SimError(
                f"--tp {tp} does not divide {self.name}'s {self.num_heads} attention heads "
                "(vLLM requires it)"
            )
        if self.num_kv_heads % tp and tp % self.num_kv_heads:
            raise SimError(
                f"--tp {tp} neither divides nor is a multiple of {self.name}'s "
                f"{self.num_kv_heads} KV heads (vLLM requires one or the other)"
            )

    def kv_heads_per_rank(self, tp: int) -> int:
        return max(1, self.num_kv_heads // tp)


@dataclass(frozen=True)
class RankParams:
    """Parameters one tensor-parallel rank holds, by role (counts, not bytes)."""

    attention: float  # q, k, v, o projections, all layers
    dense_mlp: float  # MLPs of the dense layers
    shared_experts: float  # shared experts of the MoE layers
    router: float  # MoE gates (replicated)
    expert: float  # ONE routed expert summed over the MoE layers
    num_experts: int
    embedding: float  # the input embedding table (vocab-parallel)
    lm_head: float  # the output projection; the embedding itself when tied
    lm_head_tied: bool
    norms: float  # replicated
    other: float  # off the per-token path (vision tower)

    @property
    def linear(self) -> float:
        """Parameters of the linear layers a step multiplies every token by (no experts)."""
        return self.attention + self.dense_mlp + self.shared_experts


def rank_params(arch: ModelArch, tp: int) -> RankParams:
    """Per-rank parameter counts under vLLM's tensor-parallel sharding."""
    arch.validate_tp(tp)
    h, d, L = arch.hidden_size, arch.head_dim, arch.num_layers
    q = arch.num_heads // tp * d
    kv = arch.kv_heads_per_rank(tp) * d
    attention = L * (h * (q + 2 * kv) + q * h)
    n_mat = 3 if arch.gated_mlp else 2
    dense_mlp = arch.num_dense_layers * n_mat * h * arch.intermediate_size / tp
    moe_layers = arch.num_moe_layers
    expert = moe_layers * n_mat * h * arch.moe_intermediate_size / tp
    shared = moe_layers * n_mat * h * arch.shared_expert_intermediate_size / tp
    router = moe_layers * h * arch.num_experts
    embedding = arch.vocab_size * h / tp
    norms = (2 * L + 1) * h
    return RankParams(
        attention=attention,
        dense_mlp=dense_mlp,
        shared_experts=shared,
        router=router,
        expert=expert,
        num_experts=arch.num_experts,
        embedding=embedding,
        lm_head=embedding,
        lm_head_tied=arch.tie_word_embeddings,
        norms=norms,
        other=arch.other_params / tp,
    )


def total_params(arch: ModelArch) -> float:
    """All parameters of the model (tp 1), for labels and sanity checks."""
    p = rank_params(arch, 1)
    return (
        p.linear
        + p.router
        + p.expert * p.num_experts
        + p.embedding
        + (0 if p.lm_head_tied else p.lm_head)
        + p.norms
        + p.other
    )


# ---------------------------------------------------------------- reading config.json


def bundled_models() -> list[str]:
    base = resources.files("sim").joinpath("data", "models")
    return sorted(p.name[: -len(".json")] for p in base.iterdir() if p.name.endswith(".json"))


def load_model_config(spec: str | Path) -> ModelArch:
    """A config.json path, a directory holding one, or a bundled model's name."""
    path = Path(spec)
    name = None
    if path.is_dir():
        path = path / "config.json"
        if not path.is_file():
            raise SimError(f"--model: {spec} holds no config.json")
    elif not path.is_file():
        bundled = resources.files("sim").joinpath("data", "models", f"{spec}.json")
        if not bundled.is_file():
            raise SimError(
                f"--model: no such file or bundled model {str(spec)!r}; bundled: "
                f"{', '.join(bundled_models())}"
            )
        path, name = Path(str(bundled)), str(spec)
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SimError(f"{path}: cannot read config.json ({str(e).splitlines()[0]})") from None
    if not isinstance(cfg, dict):
        raise SimError(f"{path}: a config.json must be a JSON object")
    name = name or str(cfg.get("_name_or_path") or path.resolve().parent.name)
    return arch_from_config(cfg, where=str(path), name=name)


def arch_from_config(
    cfg: dict[str, Any], where: str = "config.json", name: str = "model"
) -> ModelArch:
    """ModelArch from a config.json mapping; one-line errors name the missing key."""
    top = cfg
    text = cfg.get("text_config")
    if isinstance(text, dict):  # multimodal wrappers (Llama-4, Mistral-3...): the decoder
        cfg = {**text, **{k: top[k] for k in ("quantization_config",) if k in top}}
    model_type = str(cfg.get("model_type") or top.get("model_type") or "")
    if cfg.get("kv_lora_rank") or cfg.get("q_lora_rank"):
        raise SimError(f"{where}: multi-head latent attention (kv_lora_rank) is not modelled")
    missing = [k for k in _REQUIRED if not _positive_int(cfg.get(k))]
    num_experts = _int(cfg, "num_local_experts", "num_experts", "n_routed_experts")
    if not num_experts and not _positive_int(cfg.get("intermediate_size")):
        missing.append("intermediate_size")
    if missing:
        raise SimError(
            f"{where}: missing or non-positive {', '.join(missing)} "
            "(a decoder's config.json needs them)"
        )
    h = int(cfg["hidden_size"])
    heads = int(cfg["num_attention_heads"])
    kv_heads = _int(cfg, "num_key_value_heads") or heads
    head_dim = _int(cfg, "head_dim")
    if not head_dim:
        if h % heads:
            raise SimError(
                f"{where}: hidden_size {h} is not a multiple of num_attention_heads "
                f"{heads}; give head_dim"
            )
        head_dim = h // heads
    if heads % kv_heads:
        raise SimError(
            f"{where}: num_attention_heads {heads} is not a multiple of "
            f"num_key_value_heads {kv_heads}"
        )
    gated = cfg.get("gated_mlp")
    if gated is None:
        if model_type not in GATED_MODEL_TYPES:
            raise SimError(
                f"{where}: model_type {model_type!r}: MLP layout unknown; add "
                '"gated_mlp": true (gate, up, down) or false (up, down) to the config'
            )
        gated = True
    layers = int(cfg["num_hidden_layers"])
    moe_layers, expert_width, shared_width, top_k = 0, 0, 0, 0
    dense_width = _int(cfg, "intermediate_size")
    if num_experts:
        top_k = _int(cfg, "num_experts_per_tok")
        if not top_k:
            raise SimError(f"{where}: a mixture of experts needs num_experts_per_tok")
        expert_width = _int(cfg, "moe_intermediate_size") or _int(cfg, "intermediate_size")
        if not expert_width:
            raise SimError(f"{where}: missing moe_intermediate_size (the experts' width)")
        moe_layers = _moe_layer_count(cfg, layers, model_type)
        shared_width = _int(cfg, "shared_expert_intermediate_size")
        if model_type.startswith("llama4"):
            # Llama-4: every MoE layer also runs one shared expert of intermediate_size, and
            # its dense layers use intermediate_size_mlp.
            shared_width = _int(cfg, "intermediate_size")
            dense_width = _int(cfg, "intermediate_size_mlp") or dense_width
        if moe_layers < layers and not dense_width:
            raise SimError(f"{where}: dense layers need intermediate_size")
    dtype = _TORCH_DTYPES.get(
        str(cfg.get("torch_dtype") or top.get("torch_dtype") or cfg.get("dtype") or "bfloat16"),
        None,
    )
    if dtype is None:
        raise SimError(
            f"{where}: torch_dtype {cfg.get('torch_dtype')!r} is not one of "
            f"{', '.join(_TORCH_DTYPES)}"
        )
    if dtype == "fp32":  # vLLM serves fp32 checkpoints in 16 bits by default
        dtype = "bf16"
    vision = top.get("vision_config") if isinstance(text, dict) else None
    return ModelArch(
        name=name,
        hidden_size=h,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=dense_width if moe_layers < layers else 0,
        vocab_size=int(cfg["vocab_size"]),
        # The Llama family's config classes default to untied (Llama-4's wrapper too);
        # checkpoints that tie say so (small Qwens).
        tie_word_embeddings=bool(
            cfg.get("tie_word_embeddings", top.get("tie_word_embeddings", False))
        ),
        gated_mlp=bool(gated),
        dtype=dtype,
        weight_dtype=_weight_dtype(cfg.get("quantization_config"), dtype, where),
        max_position_embeddings=_int(cfg, "max_position_embeddings") or None,
        num_experts=num_experts,
        experts_per_token=top_k,
        moe_intermediate_size=expert_width,
        shared_expert_intermediate_size=shared_width,
        num_moe_layers=moe_layers,
        other_params=_vision_params(vision) if isinstance(vision, dict) else 0,
        source=_source_text(top.get("_source")),
    )


def _source_text(src: Any) -> str:
    """A bundled config's `_source` (repo, path, commit, original URL) as one line."""
    if not isinstance(src, dict):
        return str(src or "")
    where = " ".join(str(src[k]) for k in ("repo", "path") if src.get(k))
    if src.get("commit"):
        where += f" @ {src['commit']}"
    url = src.get("original") or src.get("url")
    return f"{where} (from {url})" if where and url else where or str(url or "")


def _moe_layer_count(cfg: dict[str, Any], layers: int, model_type: str) -> int:
    if isinstance(cfg.get("moe_layers"), list):
        return len(cfg["moe_layers"])
    if model_type.startswith("llama4"):
        step = _int(cfg, "interleave_moe_layer_step") or 1
        return len(range(step - 1, layers, step))
    step = _int(cfg, "decoder_sparse_step") or 1  # Qwen-MoE
    dense = set(cfg.get("mlp_only_layers") or [])
    first_dense = _int(cfg, "first_k_dense_replace")
    return sum(
        1 for i in range(layers) if i not in dense and i >= first_dense and (i + 1) % step == 0
    )


def _weight_dtype(q: Any, dtype: str, where: str) -> str:
    if not isinstance(q, dict):
        return dtype
    method = str(q.get("quant_method", ""))
    if method == "fp8":
        return "fp8"
    if method == "compressed-tensors":
        groups = q.get("config_groups") or {}
        weights = [g.get("weights") or {} for g in groups.values() if isinstance(g, dict)]
        if weights and all(w.get("num_bits") == 8 and w.get("type") == "float" for w in weights):
            return "fp8"
    raise SimError(
        f"{where}: quantization {method or q!r} is not modelled (fp8 only); "
        "give the unquantized config and --dtype"
    )


def _vision_params(v: dict[str, Any]) -> int:
    """A ViT's encoder layers: attention (4 h^2) and a plain MLP (2 h I) per layer."""
    h, i, n = (_int(v, "hidden_size"), _int(v, "intermediate_size"), _int(v, "num_hidden_layers"))
    return n * (4 * h * h + 2 * h * i)


def _int(cfg: dict[str, Any], *keys: str) -> int:
    for k in keys:
        v = cfg.get(k)
        if _positive_int(v):
            return int(v)
    return 0


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0
