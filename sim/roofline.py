"""First-principles step-time profiles: count a model's FLOPs and bytes per step on one
tensor-parallel rank, price them at a GPU's datasheet rates times global efficiency
factors (sim/data/roofline_factors.yaml), and size the KV cache as vLLM does.

`build_roofline` returns the profile as a mapping in sim/profile.py's roofline form (its
docstring gives the step-time formula); `write_profile` writes it atomically. What is
counted per rank and step:
- GEMMs: 2 FLOPs per active linear-layer parameter per token (attention projections,
  dense or shared-expert MLPs, the router, the top-k routed experts); the LM head once per
  decoding sequence (vLLM computes logits only where it samples).
- weights read: every linear weight the step uses, once; of the routed experts only those
  the step's tokens touch (uniform routing), though all of them occupy memory.
- attention: 4 x head_dim FLOPs per head per (query, key) pair, causal within a chunk and
  over the cached context; KV bytes of the decode context read and of new tokens written.
- tensor parallelism: weights, heads and KV split over ranks (KV heads replicated when
  fewer than ranks), two all-reduces of the hidden state per layer (after attention and
  after the MLP) over the GPU-to-GPU link.
- fp8 weights: 1 byte per linear weight and the GPU's fp8 rate (its 16-bit rate where it
  has no fp8 tensor cores); embeddings, LM head, KV cache and attention stay 16-bit.
- fixed costs: a per-step CPU overhead, a fixed time per layer and step (its kernels'
  launch, ramp-up and tail), and per request the front end's time.

KV blocks follow vLLM's determine_available_memory: total memory x utilisation, less the
rank's weights and the profiling run's peak (activations of max_num_batched_tokens tokens
plus non-torch memory), over the bytes of one block on one rank (all layers).
A GPU with public kernel measurements (sim/data/gpu_curves.json, sim/gpu_curves.py) gets
its measured curves instead of datasheet peaks for the GEMMs (each of the rank's GEMMs at
its own token count; routed experts as a grouped GEMM of the tokens each touched expert
gets) and for the all-reduces of its TP size; the profile's `measured` section holds them
and its header says so. Other GPUs are labelled "datasheet only" with the error to expect.
Not modelled: sliding-window and chunked-local attention (full attention is counted),
multi-head latent attention, CUDA-graph padding, speculative decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sim.config import MemoryModel
from sim.errors import SimError
from sim.gpu_curves import datasheet_error_pct, load_gpu_curves
from sim.hardware import GIB, GpuSpec, known_gpus, load_gpu
from sim.models import DTYPE_BYTES, ModelArch, load_model_config, rank_params, total_params
from sim.profile import OPTIONAL_FACTORS, ROOFLINE_FACTORS, profile_from_dict
from traces.io import atomic_write

DTYPES = ("bf16", "fp16", "fp8")
ESTIMATE_HEADER = (
    "# FIRST-PRINCIPLES ESTIMATE (roofline), NOT A MEASUREMENT: written by `ltrsched profile\n"
    "# roofline` from a model config and GPU datasheet figures; no step was timed.\n"
)


@dataclass(frozen=True)
class Factors:
    """The global efficiency factors and fixed overheads of the roofline."""

    factors: dict[str, float]
    request_overhead_s: float
    non_torch_memory_bytes: float
    where: str = "roofline_factors.yaml"


def load_factors(path: str | Path | None = None) -> Factors:
    """The shipped factors file, or another in its layout."""
    if path is None:
        where = "sim/data/roofline_factors.yaml"
        text = resources.files("sim").joinpath("data", "roofline_factors.yaml").read_text()
    else:
        where = str(path)
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise SimError(f"--factors {path}: cannot read ({e.strerror})") from None
    try:
        data = yaml.safe_load(text) or {}
        f = {k: float(data["factors"][k]) for k in ROOFLINE_FACTORS}
        f.update({k: float(data["factors"].get(k, v)) for k, v in OPTIONAL_FACTORS.items()})
        return Factors(
            factors=f,
            request_overhead_s=float(data["request_overhead_s"]),
            non_torch_memory_bytes=float(data["memory"]["non_torch_memory_gib"]) * GIB,
            where=where,
        )
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as e:
        raise SimError(f"{where}: bad factors file ({type(e).__name__}: {e})") from None


@dataclass(frozen=True)
class RankCounts:
    """What one rank holds and moves, in bytes and FLOPs (see the module docstring)."""

    weight_memory_bytes: float
    step_weight_bytes: float
    expert_bytes: float
    gemm_flops_per_token: float
    lm_head_flops_per_seq: float
    attention_flops_per_pair: float
    kv_bytes_per_token: float
    allreduce_bytes_per_token: float
    allreduces_per_step: int
    activation_bytes_per_token: float
    active_params: float


def rank_counts(arch: ModelArch, tp: int, weight_dtype: str) -> RankCounts:
    p = rank_params(arch, tp)
    wb, ab = DTYPE_BYTES[weight_dtype], DTYPE_BYTES[arch.dtype]
    L, h = arch.num_layers, arch.hidden_size
    untied_head = 0.0 if p.lm_head_tied else p.lm_head
    experts = p.expert * p.num_experts
    # The widest intermediate a token carries through an MLP on this rank: gate and up
    # projections of a dense layer, or of its top-k experts plus the shared one.
    dense_width = arch.intermediate_size / tp if arch.num_dense_layers else 0.0
    moe_width = (
        arch.experts_per_token * arch.moe_intermediate_size + arch.shared_expert_intermediate_size
    ) / tp
    mlp_width = max(dense_width, moe_width if arch.is_moe else 0.0)
    n_mat = 3 if arch.gated_mlp else 2
    return RankCounts(
        weight_memory_bytes=(p.linear + experts) * wb
        + (p.router + p.embedding + untied_head + p.norms + p.other) * ab,
        step_weight_bytes=p.linear * wb + (p.router + p.norms + p.lm_head) * ab,
        expert_bytes=p.expert * wb,
        gemm_flops_per_token=2.0 * (p.linear + p.router + p.expert * arch.experts_per_token),
        lm_head_flops_per_seq=2.0 * p.lm_head,
        attention_flops_per_pair=4.0 * arch.head_dim * (arch.num_heads // tp) * L,
        kv_bytes_per_token=2.0 * L * arch.kv_heads_per_rank(tp) * arch.head_dim * ab,
        allreduce_bytes_per_token=2.0 * L * h * ab if tp > 1 else 0.0,
        allreduces_per_step=2 * L if tp > 1 else 0,
        activation_bytes_per_token=(h + (n_mat - 1) * mlp_width) * ab,
        active_params=(p.linear + p.router + p.expert * arch.experts_per_token + p.lm_head) * tp,
    )


def build_roofline(
    model: str | Path | ModelArch,
    gpu: str | Path | GpuSpec,
    tp: int = 1,
    dtype: str | None = None,
    gpu_memory_utilization: float = 0.9,
    max_model_len: int | None = None,
    block_size: int = 16,
    max_num_seqs: int = 256,
    max_num_batched_tokens: int = 8192,
    factors: Factors | None = None,
    name: str | None = None,
    measured_curves: bool = True,
    measured_allreduce: bool = False,
) -> dict[str, Any]:
    """The roofline profile mapping for a model on tp GPUs of one kind; SimError (one line)
    for what vLLM would refuse: heads tp does not divide, weights that do not fit, a
    max_model_len longer than the KV cache. measured_curves=False prices even a measured
    GPU at its datasheet peaks. measured_allreduce: price all-reduces on the measured
    collective (NCCL, measured outside CUDA graphs), not the fitted latency and the link;
    off by default, since vLLM's own custom all-reduce serves decode-sized messages."""
    arch = model if isinstance(model, ModelArch) else load_model_config(model)
    spec = gpu if isinstance(gpu, GpuSpec) else load_gpu(gpu)
    factors = factors or load_factors()
    if not 0 < gpu_memory_utilization <= 1:
        raise SimError(f"--gpu-memory-utilization: must be in (0, 1], got {gpu_memory_utilization}")
    if max_model_len is not None and max_model_len < 1:
        raise SimError(f"--max-model-len: must be >= 1, got {max_model_len}")
    if block_size < 1 or max_num_seqs < 1 or max_num_batched_tokens < 1:
        raise SimError("--block-size, --max-num-seqs, --max-num-batched-tokens: must be >= 1")
    if dtype is not None and dtype not in DTYPES:
        raise SimError(f"--dtype: choose one of {', '.join(DTYPES)}, got {dtype!r}")
    act_dtype = dtype if dtype in ("bf16", "fp16") else arch.dtype
    weight_dtype = dtype or arch.weight_dtype
    if dtype in ("bf16", "fp16"):
        weight_dtype = dtype
    arch = _with_dtype(arch, act_dtype)
    c = rank_counts(arch, tp, weight_dtype)  # validates tp against the heads

    budget = spec.memory_bytes * gpu_memory_utilization
    activation = (
        factors.non_torch_memory_bytes + max_num_batched_tokens * c.activation_bytes_per_token
    )
    if c.weight_memory_bytes + activation >= budget:
        raise SimError(
            f"{arch.name} does not fit: {c.weight_memory_bytes / GIB:.1f} GiB of "
            f"{weight_dtype} weights and {activation / GIB:.1f} GiB of activations per GPU "
            f"with --tp {tp}, but {spec.name} x {gpu_memory_utilization} holds "
            f"{budget / GIB:.1f} GiB; raise --tp, use fp8 or a larger GPU"
        )
    memory = MemoryModel(
        gpu_memory_bytes=spec.memory_bytes,
        weight_bytes=c.weight_memory_bytes,
        kv_bytes_per_token=c.kv_bytes_per_token,
        activation_peak_bytes=activation,
        gpu_memory_utilization=gpu_memory_utilization,
    )
    blocks = memory.num_gpu_blocks(block_size)
    kv_tokens = blocks * block_size
    if max_model_len is None:
        max_model_len = arch.max_position_embeddings or kv_tokens
    elif arch.max_position_embeddings and max_model_len > arch.max_position_embeddings:
        raise SimError(
            f"--max-model-len {max_model_len} exceeds {arch.name}'s "
            f"max_position_embeddings {arch.max_position_embeddings}"
        )
    if max_model_len > kv_tokens:
        # vLLM refuses to start in this case ("larger than the maximum number of tokens
        # that can be stored in KV cache").
        raise SimError(
            f"max model length {max_model_len} is larger than the {kv_tokens} tokens the KV "
            f"cache holds ({blocks} blocks of {block_size}); give a smaller --max-model-len"
        )
    rates = {
        "peak_flops": spec.flops(weight_dtype),
        "attention_peak_flops": spec.flops(act_dtype),
        "memory_bandwidth_bytes_s": spec.memory_bandwidth_bytes_s,
        "interconnect_bytes_s": spec.interconnect_bytes_s,
        "host_link_bytes_s": spec.host_link_bytes_s,
    }
    name = name or f"{_slug(arch.name)}_{_slug(spec.name)}_tp{tp}_{weight_dtype}_roofline"
    measured = (
        measured_section(arch, spec, tp, weight_dtype, measured_allreduce)
        if measured_curves
        else None
    )
    profile = {
        "name": name,
        "form": "roofline",
        "source": "first-principles",
        "model": arch.name,
        "gpu": spec.name,
        "vllm_version": None,
        "dtype": weight_dtype
        if weight_dtype == act_dtype
        else f"{weight_dtype} weights, {act_dtype} activations",
        "tp": tp,
        "method": _method(arch, spec, tp, weight_dtype, factors, measured),
        "fit_error": None,
        "request_overhead_s": factors.request_overhead_s,
        "roofline": {
            "gemm_flops_per_token": c.gemm_flops_per_token,
            "lm_head_flops_per_seq": c.lm_head_flops_per_seq,
            "attention_flops_per_pair": c.attention_flops_per_pair,
            "weight_bytes": c.step_weight_bytes,
            "expert_bytes": c.expert_bytes,
            "num_experts": arch.num_experts,
            "experts_per_token": arch.experts_per_token,
            "kv_bytes_per_token": c.kv_bytes_per_token,
            "allreduce_bytes_per_token": c.allreduce_bytes_per_token,
            "allreduces_per_step": c.allreduces_per_step,
            "num_layers": arch.num_layers,
            "swap_bytes_per_block": block_size * c.kv_bytes_per_token,
            "tp": tp,
            **rates,
        },
        "factors": dict(factors.factors),
        "memory": {
            "gpu_memory_bytes": spec.memory_bytes,
            "weight_bytes": c.weight_memory_bytes,
            "kv_bytes_per_token": c.kv_bytes_per_token,
            "activation_peak_bytes": activation,
            "gpu_memory_utilization": gpu_memory_utilization,
        },
        "engine": {
            "block_size": block_size,
            "max_num_seqs": max_num_seqs,
            "max_num_batched_tokens": max_num_batched_tokens,
            "max_model_len": int(max_model_len),
        },
        "estimate": {
            "num_gpu_blocks": blocks,
            "kv_cache_tokens": kv_tokens,
            "params": total_params(arch),
            "active_params_per_token": c.active_params,
            "weights_gib_per_gpu": c.weight_memory_bytes / GIB,
            "activation_peak_gib_per_gpu": activation / GIB,
            "model_source": arch.source,
            "gpu_source": spec.source,
            "factors_file": factors.where,
            "grounding": grounding(spec, measured),
        },
    }
    if measured:
        profile["measured"] = measured
    profile_from_dict(profile, name)  # the form's own validation
    return profile


def measured_section(
    arch: ModelArch, spec: GpuSpec, tp: int, weight_dtype: str, allreduce: bool = False
) -> dict[str, Any] | None:
    """The profile's `measured` section for a GPU of the shipped table with measured
    curves: the curves, and the GEMMs one rank runs per step (k inputs, n outputs, count)."""
    if spec.name not in known_gpus() or load_gpu(spec.name) != spec:
        return None  # a user's own GPU file, even under a known name
    curves = load_gpu_curves(spec.name)
    if curves is None or curves.linear is None:
        return None
    h, d, L = arch.hidden_size, arch.head_dim, arch.num_layers
    q, kv = arch.num_heads // tp * d, arch.kv_heads_per_rank(tp) * d
    gates = 2 if arch.gated_mlp else 1
    lm, dense = arch.num_moe_layers, arch.num_dense_layers
    ops = [[h, q + 2 * kv, L], [q, h, L]]
    if dense and arch.intermediate_size:
        inter = arch.intermediate_size / tp
        ops += [[h, gates * inter, dense], [inter, h, dense]]
    expert_ops = []
    if arch.is_moe and lm:
        ops.append([h, arch.num_experts, lm])  # the router
        if arch.shared_expert_intermediate_size:
            shared = arch.shared_expert_intermediate_size / tp
            ops += [[h, gates * shared, lm], [shared, h, lm]]
        width = arch.moe_intermediate_size / tp
        expert_ops = [[h, gates * width, lm], [width, h, lm]]
    lin = curves.linear
    section: dict[str, Any] = {
        "gpu": spec.name,
        "source": curves.source,
        "curves": curves.measured(),
        "held_out_operator_error_pct": curves.operator_error_pct,
        "held_out_model": curves.held_out_model,
        "gemm_tokens": [float(x) for x in lin.tokens],
        "gemm_flops_s": [float(x) for x in lin.flops_s],
        # fp8 GEMMs assumed to reach the same share of their (fp8) peak as 16-bit ones did.
        "flops_scale": spec.flops(weight_dtype) / spec.flops("bf16"),
        "weight_bandwidth_bytes_s": lin.weight_bandwidth_bytes_s,
        "kernel_s": lin.kernel_s,
        "weight_dtype_bytes": float(DTYPE_BYTES[weight_dtype]),
        "linear_ops": [[float(a), float(b), float(c)] for a, b, c in ops],
        "expert_ops": [[float(a), float(b), float(c)] for a, b, c in expert_ops],
        "lm_head": [float(h), float(arch.vocab_size / tp)],
    }
    ar = curves.allreduce.get(tp)
    if allreduce and tp > 1 and ar is not None:
        section["allreduce"] = {
            "latency_s": ar.latency_s,
            "bandwidth_bytes_s": ar.bandwidth_bytes_s,
            "tp": tp,
        }
    return section


def grounding(spec: GpuSpec, measured: dict[str, Any] | None) -> str:
    """One line: what the profile's GPU numbers rest on."""
    if measured:
        err = measured.get("held_out_operator_error_pct")
        tail = f"; median |error| {err:g}% on a held-out model's linear operators" if err else ""
        used = ["linear layers (GEMM FLOP/s by tokens, weight bandwidth)"]
        if "allreduce" in measured:
            used.append(f"all-reduce at TP {measured['allreduce']['tp']}")
        return (
            f"measured curves of {spec.name}: {', '.join(used)}, from {measured['source']}"
            f"{tail}; attention, KV reads and fixed overheads: datasheet x global factors"
        )
    err = datasheet_error_pct()
    expect = f"; expect about {err:g}% median error on GEMM operators" if err else ""
    has = load_gpu_curves(spec.name) if spec.name in known_gpus() else None
    why = (
        "measured curves not used (--datasheet-only)"
        if has is not None
        else f"no kernel measurements of {spec.name}"
    )
    return f"datasheet only: {why}{expect}"


def profile_header(profile: dict[str, Any]) -> str:
    """The estimate banner plus the profile's grounding line."""
    note = profile.get("estimate", {}).get("grounding")
    return ESTIMATE_HEADER + (f"# GPU: {note}\n" if note else "")


def write_profile(profile: dict[str, Any], out: str | Path, header: str | None = None) -> None:
    header = profile_header(profile) if header is None else header
    text = header + yaml.safe_dump(_plain(profile), sort_keys=False, width=100)
    atomic_write(out, lambda tmp: Path(tmp).write_text(text))


def fit_non_torch_memory(table: str | Path | None = None) -> tuple[float, list[dict[str, Any]]]:
    """The median, in GiB, over the dense-model runs of sim/data/vllm_kv_blocks.csv, of the
    memory vLLM kept beside weights, KV blocks and our activation estimate; and the rows."""
    import pandas as pd

    src = table or Path(str(resources.files("sim").joinpath("data", "vllm_kv_blocks.csv")))
    df = pd.read_csv(src, comment="#")
    rows = []
    for r in df.itertuples():
        arch = _with_dtype(load_model_config(r.model), "fp16" if r.dtype == "fp16" else "bf16")
        if arch.is_moe:
            continue  # Llama-4's chunked-local attention changes vLLM's KV arithmetic
        c = rank_counts(arch, int(r.tp), "fp8" if r.dtype == "fp8" else arch.dtype)
        spec = load_gpu(r.gpu)
        rest = (
            spec.memory_bytes * r.gpu_memory_utilization
            - c.weight_memory_bytes
            - r.num_gpu_blocks * r.block_size * c.kv_bytes_per_token
            - r.max_num_batched_tokens * c.activation_bytes_per_token
        )
        rows.append({"model": r.model, "tp": int(r.tp), "rest_gib": rest / GIB})
    return float(np.median([x["rest_gib"] for x in rows])), rows


def _with_dtype(arch: ModelArch, act_dtype: str) -> ModelArch:
    from dataclasses import replace

    return arch if arch.dtype == act_dtype else replace(arch, dtype=act_dtype)


def _method(
    arch: ModelArch,
    spec: GpuSpec,
    tp: int,
    wdtype: str,
    f: Factors,
    measured: dict[str, Any] | None = None,
) -> str:
    shares = ", ".join(f"{k} {v:g}" for k, v in f.factors.items())
    curves = (
        f"GEMMs{' and all-reduces' if 'allreduce' in measured else ''} priced on measured "
        f"curves of this GPU ({measured['source']}), the rest "
        if measured
        else ""
    )
    return (
        f"Roofline estimate (sim/roofline.py): {arch.name} ({total_params(arch) / 1e9:.2f}B "
        f"parameters{', MoE' if arch.is_moe else ''}) on {tp} x {spec.name}, {wdtype} weights. "
        f"FLOPs and bytes per step and rank counted from the config "
        f"({arch.source or 'user config'}), {curves}priced at datasheet peaks "
        f"({spec.source or 'user GPU file'}) "
        f"times global factors from {f.where} ({shares}); request overhead "
        f"{f.request_overhead_s:g} s. No step of this model was timed on this GPU."
    )


def _slug(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in ".-" else "-" for ch in Path(s).name.lower())


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    return x
