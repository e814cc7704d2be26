"""Step-time profiles: how long one engine step takes, from its batch composition.

A step holds P prefill tokens (in chunks n_i, with sum(n_i^2) = prefill_sq and
sum(n_i x tokens already cached before chunk i) = prefill_ctx), D decode requests with
C context tokens in all, and swaps B KV blocks. Two forms, one file each (YAML or JSON):

- linear (measured; `coefficients`), fitted from live step logs:
  t = c0 + prefill_token * P + prefill_sq * sum(n_i^2) + decode_req * D
        + decode_ctx_token * C + prefill_ctx_token * prefill_ctx + swap_block * B
- roofline (`form: roofline`; first-principles, sim/roofline.py writes it): per GPU rank,
  t = step_overhead + layers x layer_overhead + max(GEMM FLOPs / F_gemm, weight bytes / BW)
        + max(attention FLOPs / F_attn, KV bytes / BW) + all-reduce + swap
  with GEMM FLOPs = gemm_flops_per_token x (P + D) + lm_head_flops_per_seq x D;
  weight bytes = weight_bytes + expert_bytes x E[experts touched by P + D tokens];
  attention FLOPs = attention_flops_per_pair x (prefill_ctx + (prefill_sq + P) / 2 + C)
  (a chunk's tokens attend causally to each other and to the cached context);
  KV bytes = kv_bytes_per_token x (C + P + D) (read the decode context, write new KV);
  all-reduce = allreduces_per_step x allreduce_latency + ring traffic over the link;
  F = peak FLOP/s x achieved share, BW = memory bandwidth x achieved share (`factors`).
  GEMMs and attention run one after the other in a step, so each is its own roofline.
  layer_overhead: the fixed time of one layer's kernels that no roofline counts (launch,
  ramp-up and tail of each of a layer's ~10 kernels), paid by every layer of every step.
  With a `measured` section (a GPU with kernel measurements, sim/gpu_curves.py), the GEMM
  term is instead the sum over the rank's GEMMs of that GPU's measured curve, each at its
  own token count (routed experts at the tokens each touched expert gets, a grouped GEMM
  of small batches; the LM head at D), and each all-reduce costs the measured latency plus
  its bytes over the measured bandwidth for this TP size.

Both forms also carry request_overhead_s: the front end's time per request (HTTP server,
tokenizer, detokenizer) that a client's TTFT and end-to-end latency include and the
engine's step log does not. A profile says which model, GPU and vLLM version it
describes, how it was obtained, and the fit error where it was fitted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sim.config import MemoryModel
from sim.errors import SimError

COEFFICIENTS = (
    "c0_s",
    "prefill_token_s",
    "prefill_sq_s",
    "decode_req_s",
    "decode_ctx_token_s",
    "prefill_ctx_token_s",
    "swap_block_s",
)
OPTIONAL_COEFFICIENTS = ("prefill_ctx_token_s", "swap_block_s")  # 0 when absent
DEFAULT_PROFILE = "llama3-8b_h100_first-principles"
# Engine limits a profile may carry from the server it describes (the `engine` section).
PROFILE_LIMITS = ("max_num_seqs", "max_num_batched_tokens", "block_size", "max_model_len")


@dataclass(frozen=True)
class StepTimeProfile:
    name: str
    c0_s: float
    prefill_token_s: float
    prefill_sq_s: float
    decode_req_s: float
    decode_ctx_token_s: float
    swap_block_s: float = 0.0
    prefill_ctx_token_s: float = 0.0
    request_overhead_s: float = 0.0
    model: str = ""
    gpu: str = ""
    vllm_version: str | None = None
    source: str = "measured"  # "measured" or "first-principles"
    method: str = ""
    fit_error: dict[str, Any] | None = None
    memory: MemoryModel | None = None
    # Engine limits as the measured server reported them (num_gpu_blocks, block_size...).
    engine: dict[str, Any] = field(default_factory=dict)
    path: str = ""

    def step_time(
        self, prefill_tokens, prefill_sq, decode_reqs, decode_ctx, swap_blocks=0, prefill_ctx=0
    ):
        """Works on Python numbers and on numpy arrays with the same operation order,
        so the fast and step-by-step engines add up identical floats."""
        return (
            self.c0_s
            + self.prefill_token_s * prefill_tokens
            + self.prefill_sq_s * prefill_sq
            + self.decode_req_s * decode_reqs
            + self.decode_ctx_token_s * decode_ctx
            + self.swap_block_s * swap_blocks
            + self.prefill_ctx_token_s * prefill_ctx
        )

    @property
    def form(self) -> str:
        return "linear"

    @property
    def label(self) -> str:
        tag = " [FIRST-PRINCIPLES ESTIMATE, not measured]" if self.source != "measured" else ""
        return f"{self.name} ({self.model} on {self.gpu}){tag}"


ROOFLINE_TERMS = (
    "gemm_flops_per_token",  # 2 x active linear-layer parameters per rank (no LM head)
    "lm_head_flops_per_seq",  # 2 x the rank's LM-head parameters, per sampled sequence
    "attention_flops_per_pair",  # 4 x head_dim x heads per rank x layers, per (query, key)
    "weight_bytes",  # weights every step reads on a rank (all but routed experts)
    "expert_bytes",  # one routed expert over all MoE layers, on a rank
    "kv_bytes_per_token",  # KV cache of one token, all layers, on a rank
    "allreduce_bytes_per_token",  # payload of a step's all-reduces per token
    "allreduces_per_step",
    "swap_bytes_per_block",  # one KV block on a rank, moved over the host link
    "peak_flops",  # dense FLOP/s of the GEMMs' dtype
    "attention_peak_flops",  # dense FLOP/s of the 16-bit attention kernels
    "memory_bandwidth_bytes_s",
    "interconnect_bytes_s",  # GPU-to-GPU, both directions together
    "host_link_bytes_s",  # PCIe, both directions together
)
ROOFLINE_INTS = ("num_experts", "experts_per_token", "tp")
# Written since layer_overhead_s was introduced; profiles without them pay no per-layer cost.
OPTIONAL_ROOFLINE = {"num_layers": 0.0}
ROOFLINE_FACTORS = (
    "gemm_flops_share",  # achieved share of peak FLOP/s in GEMMs
    "attention_flops_share",  # ... in attention kernels
    "memory_bandwidth_share",  # achieved share of peak memory bandwidth
    "interconnect_share",  # achieved share of the GPU-to-GPU link in all-reduces
    "allreduce_latency_s",  # fixed cost of one all-reduce
    "step_overhead_s",  # CPU and launch time per step the GPU does not hide
)
OPTIONAL_FACTORS = {"layer_overhead_s": 0.0}  # fixed time per layer and step
_SHARES = ROOFLINE_FACTORS[:4]


@dataclass(frozen=True)
class RooflineProfile(StepTimeProfile):
    """The roofline form (see the module docstring). Counts are per GPU rank; the linear
    coefficients stay 0 and unused."""

    c0_s: float = 0.0
    prefill_token_s: float = 0.0
    prefill_sq_s: float = 0.0
    decode_req_s: float = 0.0
    decode_ctx_token_s: float = 0.0
    source: str = "first-principles"
    roofline: dict[str, float] = field(default_factory=dict)
    factors: dict[str, float] = field(default_factory=dict)
    measured: dict[str, Any] | None = None
    _k: tuple = field(init=False, repr=False, compare=False, default=())
    _touched: Any = field(init=False, repr=False, compare=False, default=None)
    _linear: Any = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        r, f = self.roofline, self.factors
        bw = r["memory_bandwidth_bytes_s"] * f["memory_bandwidth_share"]
        gemm = r["peak_flops"] * f["gemm_flops_share"]
        attn = r["attention_peak_flops"] * f["attention_flops_share"]
        tp = int(r["tp"])
        # Ring all-reduce: each rank sends and receives 2 (tp - 1) / tp of the payload,
        # over one direction of its link.
        ring = 2.0 * (tp - 1) / tp / (r["interconnect_bytes_s"] / 2 * f["interconnect_share"])
        # Fixed costs per step, the layers' included: one constant of the profile.
        fixed = f["step_overhead_s"] + r.get("num_layers", 0.0) * f.get("layer_overhead_s", 0.0)
        k = (
            fixed,
            r["gemm_flops_per_token"] / gemm,
            r["lm_head_flops_per_seq"] / gemm,
            r["weight_bytes"] / bw,
            r["expert_bytes"] / bw,
            r["attention_flops_per_pair"] / attn,
            r["kv_bytes_per_token"] / bw,
            r["allreduces_per_step"] * f["allreduce_latency_s"] if tp > 1 else 0.0,
            r["allreduce_bytes_per_token"] * ring if tp > 1 else 0.0,
            r["swap_bytes_per_block"] / (r["host_link_bytes_s"] / 2),
        )
        if int(r["num_experts"]) > 0:
            object.__setattr__(
                self,
                "_touched",
                experts_touched_table(int(r["num_experts"]), int(r["experts_per_token"])),
            )
        if self.measured:
            m = self.measured
            ar = m.get("allreduce")
            if tp > 1 and ar:
                k = (
                    *k[:7],
                    r["allreduces_per_step"] * ar["latency_s"],
                    r["allreduce_bytes_per_token"] / ar["bandwidth_bytes_s"],
                    k[9],
                )
            object.__setattr__(self, "_linear", measured_gemm_tables(m, r, self._touched))
        object.__setattr__(self, "_k", k)
        object.__setattr__(self, "swap_block_s", k[9])

    def step_time(
        self, prefill_tokens, prefill_sq, decode_reqs, decode_ctx, swap_blocks=0, prefill_ctx=0
    ):
        """The same operations, in the same order, for numbers and numpy arrays, so the
        fast and step-by-step engines add up identical floats. (For plain numbers the
        builtin max stands in for np.maximum: it returns one operand exactly, as np.maximum
        does, at a tenth of the cost.)"""
        over, a_tok, a_seq, w_s, e_s, at_s, kv_s, ar_fix, ar_tok, swap_s = self._k
        tokens = prefill_tokens + decode_reqs
        if (
            type(tokens) is int
            and type(decode_ctx) is int
            and self._touched is None
            and self._linear is None
        ):
            # A plain step of a dense model: the lines below, for numbers.
            pairs = prefill_ctx + 0.5 * (prefill_sq + prefill_tokens) + decode_ctx
            return (
                over
                + max(a_tok * tokens + a_seq * decode_reqs, w_s)
                + max(at_s * pairs, kv_s * (decode_ctx + tokens))
                + (ar_fix + ar_tok * tokens)
                + swap_s * swap_blocks
            )
        plain = type(tokens) is int and type(decode_ctx) in (int, float)
        larger = max if plain else np.maximum
        if self._linear is not None:
            lin, head, last = self._linear
            if plain:
                gemm = _lookup(lin, tokens, last) + _lookup(head, decode_reqs, last)
            else:
                gemm = _lookup_array(lin, tokens, last) + _lookup_array(head, decode_reqs, last)
            pairs = prefill_ctx + 0.5 * (prefill_sq + prefill_tokens) + decode_ctx
            attention = larger(at_s * pairs, kv_s * (decode_ctx + tokens))
            return over + gemm + attention + (ar_fix + ar_tok * tokens) + swap_s * swap_blocks
        weights = w_s
        if self._touched is not None:
            last = len(self._touched) - 1
            if plain:
                weights = w_s + e_s * float(self._touched[min(tokens, last)])
            else:
                weights = w_s + e_s * self._touched[np.minimum(np.asarray(tokens, np.int64), last)]
        gemm = larger(a_tok * tokens + a_seq * decode_reqs, weights)
        pairs = prefill_ctx + 0.5 * (prefill_sq + prefill_tokens) + decode_ctx
        attention = larger(at_s * pairs, kv_s * (decode_ctx + tokens))
        return over + gemm + attention + (ar_fix + ar_tok * tokens) + swap_s * swap_blocks

    @property
    def form(self) -> str:
        return "roofline"

    @property
    def label(self) -> str:
        fitted = " fitted to bench results" if self.fit_error else ""
        curves = " on measured GPU curves" if self.measured else ""
        return (
            f"{self.name} ({self.model} on {self.gpu}) [FIRST-PRINCIPLES ESTIMATE "
            f"(roofline{curves}){fitted}, not measured]"
        )


# Token counts the GEMM tables hold; past the end, the last step's slope carries on.
MEASURED_TABLE_TOKENS = 16384


def measured_gemm_tables(
    m: dict[str, Any], r: dict[str, float], touched: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Time of a step's GEMMs on one rank by token count (all but the LM head), and of
    the LM head by sampled sequences, from the measured curve (sim/gpu_curves.py)."""
    from sim.gpu_curves import LinearCurve

    curve = LinearCurve(
        tokens=tuple(m["gemm_tokens"]),
        flops_s=tuple(f * m.get("flops_scale", 1.0) for f in m["gemm_flops_s"]),
        weight_bandwidth_bytes_s=m["weight_bandwidth_bytes_s"],
        kernel_s=m["kernel_s"],
    )
    wb = m.get("weight_dtype_bytes", 2.0)
    n = np.arange(MEASURED_TABLE_TOKENS + 1, dtype=np.float64)

    def gemm(tokens, k, out, dtype_bytes):
        # One GEMM: fixed time + max(FLOPs / F(tokens), (weights + in/out activations) / BW).
        flops = 2.0 * tokens * k * out
        nbytes = dtype_bytes * k * out + 2.0 * tokens * (k + out)
        f = curve.flops_at(np.maximum(tokens, 1.0))
        return curve.kernel_s + np.maximum(flops / f, nbytes / curve.weight_bandwidth_bytes_s)

    lin = np.zeros_like(n)
    for k, out, count in m["linear_ops"]:
        lin += count * gemm(n, k, out, wb)
    if m.get("expert_ops") and touched is not None:
        # A grouped GEMM: the touched experts each multiply their share of the step's
        # tokens (uniform routing), so small steps run far from the GEMM's peak.
        e_t = touched[np.minimum(n.astype(np.int64), len(touched) - 1)]
        per_expert = np.where(e_t > 0, n * r["experts_per_token"] / np.maximum(e_t, 1e-12), 0.0)
        for k, out, count in m["expert_ops"]:
            # vLLM's fused MoE runs all touched experts in one kernel: its fixed time once.
            work = gemm(per_expert, k, out, wb) - curve.kernel_s
            lin += count * np.where(e_t > 0, curve.kernel_s + e_t * work, 0.0)
    k, out = m["lm_head"]
    head = gemm(n, k, out, 2.0)
    lin[0] = head[0] = 0.0  # no tokens, no GEMMs
    return lin, head, MEASURED_TABLE_TOKENS


def _lookup(table: np.ndarray, i: int, last: int) -> float:
    if i <= last:
        return float(table[i])
    return float(table[last]) + (float(table[last]) - float(table[last - 1])) * (i - last)


def _lookup_array(table: np.ndarray, i: Any, last: int) -> np.ndarray:
    i = np.asarray(i, np.int64)
    inside = table[np.minimum(i, last)]
    slope = table[last] - table[last - 1]
    return np.where(i <= last, inside, table[last] + slope * (i - last))


def experts_touched_table(num_experts: int, top_k: int) -> np.ndarray:
    """E[distinct experts one MoE layer reads] for 0, 1, 2, ... tokens, each routed to
    top_k of num_experts uniformly: E (1 - (1 - k/E)^n). Past the table's end it is E to
    double precision; a lookup keeps scalar and array calls bit-identical."""
    q = 1.0 - top_k / num_experts
    if q <= 0.0:  # every token reads every expert
        return np.array([0.0, float(num_experts)])
    n = min(1 << 20, int(np.ceil(np.log(1e-18) / np.log(q))) + 2)
    table = num_experts * (1.0 - np.power(q, np.arange(n, dtype=np.float64)))
    table[-1] = float(num_experts)
    return table


def _bundled(name: str) -> Path | None:
    base = resources.files("sim").joinpath("profiles")
    for ext in (".yaml", ".yml", ".json"):
        p = base.joinpath(name + ext)
        if p.is_file():
            return Path(str(p))
    return None


def bundled_profiles() -> list[str]:
    base = resources.files("sim").joinpath("profiles")
    return sorted(
        p.name.rsplit(".", 1)[0]
        for p in base.iterdir()
        if p.name.endswith((".yaml", ".yml", ".json"))
    )


def load_profile(spec: str | None = None) -> StepTimeProfile:
    """Load a profile by bundled name or file path; errors name the file and the key."""
    spec = spec or DEFAULT_PROFILE
    path = Path(spec)
    if not path.exists():
        found = _bundled(spec)
        if found is None:
            raise SimError(
                f"--profile: no such file or bundled profile {spec!r}; bundled: "
                f"{', '.join(bundled_profiles())}"
            )
        path = found
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise SimError(f"{path}: cannot read profile ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise SimError(f"{path}: a profile must be a mapping, got {type(data).__name__}")
    return profile_from_dict(data, str(path))


def profile_from_dict(data: dict[str, Any], where: str = "profile") -> StepTimeProfile:
    """Either form, by `form` (linear when absent); errors name the file and the key."""
    form = data.get("form", "linear")
    if form not in ("linear", "roofline"):
        raise SimError(f"{where}: form must be 'linear' or 'roofline', got {form!r}")
    source = str(data.get("source", "first-principles" if form == "roofline" else "measured"))
    if source not in ("measured", "first-principles"):
        raise SimError(f"{where}: source must be 'measured' or 'first-principles', got {source!r}")
    if form == "roofline" and source != "first-principles":
        raise SimError(f"{where}: a roofline profile is an estimate: source first-principles")
    overhead = data.get("request_overhead_s", 0.0)
    if not _number(overhead) or overhead < 0:
        raise SimError(f"{where}: request_overhead_s must be a number >= 0, got {overhead!r}")
    common = dict(
        name=str(data.get("name", Path(where).stem)),
        request_overhead_s=float(overhead),
        model=str(data.get("model", "")),
        gpu=str(data.get("gpu", "")),
        vllm_version=data.get("vllm_version"),
        source=source,
        method=str(data.get("method", "")),
        fit_error=data.get("fit_error"),
        memory=_memory(data.get("memory"), where),
        engine=dict(data.get("engine") or {}),
        path=where,
    )
    if form == "roofline":
        sections = _roofline_sections(data, where)
        return RooflineProfile(
            **common, **sections, measured=_measured(data.get("measured"), where)
        )
    coeffs = data.get("coefficients")
    if not isinstance(coeffs, dict):
        raise SimError(f"{where}: missing 'coefficients' mapping")
    values = {}
    for key in COEFFICIENTS:
        v = coeffs.get(key, 0.0 if key in OPTIONAL_COEFFICIENTS else None)
        if v is None:
            raise SimError(f"{where}: coefficients.{key} is missing")
        if not _number(v) or v < 0:
            raise SimError(f"{where}: coefficients.{key} must be a number >= 0, got {v!r}")
        values[key] = float(v)
    unknown = set(coeffs) - set(COEFFICIENTS)
    if unknown:
        raise SimError(f"{where}: unknown coefficient(s) {', '.join(sorted(unknown))}")
    if values["c0_s"] + values["decode_req_s"] <= 0:
        raise SimError(f"{where}: c0_s + decode_req_s must be > 0 (a step cannot take no time)")
    return StepTimeProfile(**values, **common)


def _roofline_sections(data: dict[str, Any], where: str) -> dict[str, Any]:
    r, f = data.get("roofline"), data.get("factors")
    if not isinstance(r, dict) or not isinstance(f, dict):
        raise SimError(f"{where}: a roofline profile needs 'roofline' and 'factors' mappings")
    terms: dict[str, float] = {}
    for key in (*ROOFLINE_TERMS, *ROOFLINE_INTS, *OPTIONAL_ROOFLINE):
        v = r.get(key, OPTIONAL_ROOFLINE.get(key))
        if not _number(v) or v < 0:
            raise SimError(f"{where}: roofline.{key} must be a number >= 0, got {v!r}")
        terms[key] = float(v)
    for key in (
        "peak_flops",
        "attention_peak_flops",
        "memory_bandwidth_bytes_s",
        "interconnect_bytes_s",
        "host_link_bytes_s",
        "tp",
    ):
        if terms[key] <= 0:
            raise SimError(f"{where}: roofline.{key} must be > 0")
    if terms["num_experts"] and not 0 < terms["experts_per_token"] <= terms["num_experts"]:
        raise SimError(f"{where}: roofline.experts_per_token must be in 1..num_experts")
    factors: dict[str, float] = {}
    for key in (*ROOFLINE_FACTORS, *OPTIONAL_FACTORS):
        v = f.get(key, OPTIONAL_FACTORS.get(key))
        if not _number(v) or v < 0 or (key in _SHARES and not 0 < v <= 1):
            bound = "in (0, 1]" if key in _SHARES else ">= 0"
            raise SimError(f"{where}: factors.{key} must be a number {bound}, got {v!r}")
        factors[key] = float(v)
    unknown = (set(r) - set(ROOFLINE_TERMS) - set(ROOFLINE_INTS) - set(OPTIONAL_ROOFLINE)) | (
        set(f) - set(ROOFLINE_FACTORS) - set(OPTIONAL_FACTORS)
    )
    if unknown:
        raise SimError(f"{where}: unknown roofline term(s) {', '.join(sorted(unknown))}")
    return {"roofline": terms, "factors": factors}


MEASURED_NUMBERS = ("weight_bandwidth_bytes_s", "kernel_s")


def _measured(m: Any, where: str) -> dict[str, Any] | None:
    """The optional `measured` section of a roofline profile: a GPU's curves and the
    rank's GEMM shapes (sim/roofline.py writes it); errors name the key."""
    if m is None:
        return None
    if not isinstance(m, dict):
        raise SimError(f"{where}: measured must be a mapping")

    def bad(key: str, what: str) -> SimError:
        return SimError(f"{where}: measured.{key} {what}, got {m.get(key)!r}")

    out = dict(m)
    for key in MEASURED_NUMBERS:
        if not _number(m.get(key)) or m[key] < 0 or (key != "kernel_s" and m[key] <= 0):
            raise bad(key, "must be a number > 0")
    for key in ("flops_scale", "weight_dtype_bytes"):
        if key in m and (not _number(m[key]) or m[key] <= 0):
            raise bad(key, "must be a number > 0")
    tokens, flops = m.get("gemm_tokens"), m.get("gemm_flops_s")
    if (
        not isinstance(tokens, list)
        or not isinstance(flops, list)
        or len(tokens) < 2
        or len(tokens) != len(flops)
        or not all(_number(x) and x >= 1 for x in tokens)
        or not all(_number(x) and x > 0 for x in flops)
        or any(b <= a for a, b in zip(tokens[:-1], tokens[1:], strict=True))
    ):
        raise bad(
            "gemm_tokens",
            "and gemm_flops_s must be lists of equal length (tokens rising from >= 1, FLOP/s > 0)",
        )
    for key in ("linear_ops", "expert_ops"):
        ops = m.get(key, [] if key == "expert_ops" else None)
        if not isinstance(ops, list) or not all(
            isinstance(o, list) and len(o) == 3 and all(_number(x) and x >= 0 for x in o)
            for o in ops
        ):
            raise bad(key, "must be a list of [k, n, count] (numbers >= 0)")
    head = m.get("lm_head")
    if not isinstance(head, list) or len(head) != 2 or not all(_number(x) and x > 0 for x in head):
        raise bad("lm_head", "must be [k, n] (numbers > 0)")
    ar = m.get("allreduce")
    if ar is not None and (
        not isinstance(ar, dict)
        or not _number(ar.get("latency_s"))
        or ar["latency_s"] < 0
        or not _number(ar.get("bandwidth_bytes_s"))
        or ar["bandwidth_bytes_s"] <= 0
    ):
        raise bad("allreduce", "must hold latency_s >= 0 and bandwidth_bytes_s > 0")
    return out


def _memory(m: Any, where: str) -> MemoryModel | None:
    if not isinstance(m, dict):
        return None
    try:
        return MemoryModel(
            gpu_memory_bytes=float(m["gpu_memory_bytes"]),
            weight_bytes=float(m["weight_bytes"]),
            kv_bytes_per_token=float(m["kv_bytes_per_token"]),
            activation_peak_bytes=float(m.get("activation_peak_bytes", 0.0)),
            gpu_memory_utilization=float(m.get("gpu_memory_utilization", 0.9)),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise SimError(f"{where}: bad memory section ({e})") from None


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
