"""Measured per-GPU curves for the roofline: what a GPU's linear layers and all-reduces
achieved in public kernel measurements, so a profile for a measured GPU rests on that GPU
rather than on its datasheet times global shares.

The facts live in sim/data/gpu_curves.json (benchmarks/gpu_curves.py derives them from
microsoft/vidur's data/profiling and writes its provenance there). Two curves per GPU:
- linear layers: one GEMM of n tokens, K inputs and N outputs takes
  kernel_s + max(2 n K N / F(n), bytes / weight_bandwidth), where F(n), the achieved
  FLOP/s, rises with the token count (small decode batches are far from peak, large
  prefill chunks near it), interpolated in log2(n) between knots and flat past the ends;
- all-reduce, per tensor-parallel size: latency_s + bytes / bandwidth_bytes_s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from sim.errors import SimError

FACTS = "gpu_curves.json"


@dataclass(frozen=True)
class LinearCurve:
    """Achieved GEMM FLOP/s by token count, weight-read bandwidth and fixed kernel time."""

    tokens: tuple[float, ...]  # knots, increasing, >= 1
    flops_s: tuple[float, ...]  # achieved FLOP/s at each knot
    weight_bandwidth_bytes_s: float
    kernel_s: float  # fixed time of one GEMM kernel

    def flops_at(self, n: Any) -> Any:
        """Achieved FLOP/s for GEMMs of n tokens (numbers or arrays)."""
        x = np.log2(np.maximum(np.asarray(n, dtype=np.float64), 1.0))
        return np.exp(np.interp(x, np.log2(self.tokens), np.log(self.flops_s)))

    def gemm_s(self, n: Any, k: Any, m: Any, dtype_bytes: float = 2.0) -> Any:
        """Time of one GEMM of n tokens by a k x m weight (16-bit unless told)."""
        flops = 2.0 * n * k * m
        nbytes = dtype_bytes * (k * m + n * k + n * m)
        return self.kernel_s + np.maximum(
            flops / self.flops_at(n), nbytes / self.weight_bandwidth_bytes_s
        )


@dataclass(frozen=True)
class AllreduceCurve:
    """One all-reduce of b bytes over tp GPUs: latency_s + b / bandwidth_bytes_s."""

    tp: int
    latency_s: float
    bandwidth_bytes_s: float

    def time_s(self, nbytes: Any) -> Any:
        return self.latency_s + nbytes / self.bandwidth_bytes_s


@dataclass(frozen=True)
class GpuCurves:
    """What is measured of one GPU, and where the numbers come from."""

    gpu: str
    linear: LinearCurve | None
    allreduce: dict[int, AllreduceCurve]
    interconnect: str
    source: str  # repository, commit and paths the curves were derived from
    operator_error_pct: float | None  # median |error| on a held-out model's linear operators
    held_out_model: str

    def measured(self) -> list[str]:
        """The curves this GPU has, in words."""
        out = ["linear layers (GEMM FLOP/s by tokens, weight bandwidth)"] if self.linear else []
        if self.allreduce:
            tps = ", ".join(str(t) for t in sorted(self.allreduce))
            out.append(f"all-reduce (TP {tps}, {self.interconnect})")
        return out


def _facts() -> dict[str, Any]:
    text = resources.files("sim").joinpath("data", FACTS).read_text()
    return json.loads(text)


def curves_from_dict(gpu: str, d: dict[str, Any], source: str) -> GpuCurves:
    """One GPU's entry of the facts file; SimError naming the key on a bad one."""
    where = f"sim/data/{FACTS}: {gpu}"
    try:
        lin = d.get("linear")
        linear = None
        if lin:
            linear = LinearCurve(
                tokens=tuple(float(x) for x in lin["tokens"]),
                flops_s=tuple(float(x) for x in lin["flops_s"]),
                weight_bandwidth_bytes_s=float(lin["weight_bandwidth_bytes_s"]),
                kernel_s=float(lin["kernel_s"]),
            )
            t = np.asarray(linear.tokens)
            if len(t) < 2 or len(t) != len(linear.flops_s) or np.any(np.diff(t) <= 0) or t[0] < 1:
                raise ValueError("linear.tokens must increase from >= 1, one per flops_s")
        ar = {
            int(tp): AllreduceCurve(int(tp), float(v["latency_s"]), float(v["bandwidth_bytes_s"]))
            for tp, v in (d.get("allreduce") or {}).items()
        }
        err = d.get("held_out", {}).get("median_abs_error_pct")
        return GpuCurves(
            gpu=gpu,
            linear=linear,
            allreduce=ar,
            interconnect=str(d.get("interconnect", "")),
            source=source,
            operator_error_pct=None if err is None else float(err),
            held_out_model=str(d.get("held_out", {}).get("model", "")),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise SimError(f"{where}: bad entry ({type(e).__name__}: {e})") from None


def load_gpu_curves(gpu: str) -> GpuCurves | None:
    """The measured curves of a GPU of the shipped table (by its name there), or None."""
    facts = _facts()
    entry = facts.get("gpus", {}).get(gpu)
    if entry is None:
        return None
    src = facts.get("source", {})
    source = f"{src.get('repo', '?')} {src.get('path', '?')} @ {src.get('commit', '?')}"
    return curves_from_dict(gpu, entry, source)


def datasheet_error_pct() -> float | None:
    """Median |error| of the datasheet roofline on the measured GPUs' linear operators:
    what a GPU with no measurements should expect."""
    v = _facts().get("datasheet_only", {}).get("median_abs_error_pct")
    return None if v is None else float(v)
