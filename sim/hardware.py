"""GPUs for the roofline: peak rates, memory and links, from the datasheet table shipped
in sim/data/gpus.yaml (its header gives the units), or from a user's YAML file with the
same fields."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sim.errors import SimError

GIB = 1024**3
MIB = 1024**2
_REQUIRED = ("peak_tflops", "memory_bandwidth_tb_s", "memory_gib", "interconnect_gb_s")


@dataclass(frozen=True)
class GpuSpec:
    name: str
    peak_flops: dict[str, float]  # dense FLOP/s per dtype (bf16, fp16, fp8)
    memory_bandwidth_bytes_s: float
    memory_bytes: float  # what vLLM sees as the GPU's total memory
    interconnect_bytes_s: float  # GPU-to-GPU, both directions together
    host_link_bytes_s: float  # PCIe to the host, both directions together
    interconnect: str = ""
    source: str = ""

    def flops(self, dtype: str) -> float:
        """Peak dense FLOP/s for a GEMM in dtype; fp8 falls back to the 16-bit rate on GPUs
        without fp8 tensor cores (weight-only fp8)."""
        if dtype in self.peak_flops:
            return self.peak_flops[dtype]
        return self.peak_flops.get("bf16") or self.peak_flops["fp16"]


def _table() -> dict[str, Any]:
    text = resources.files("sim").joinpath("data", "gpus.yaml").read_text()
    return yaml.safe_load(text)


def known_gpus() -> list[str]:
    return list(_table())


def load_gpu(spec: str | Path) -> GpuSpec:
    """A GPU of the shipped table by name (case-insensitive), or a YAML file of one GPU."""
    path = Path(spec)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as e:
            raise SimError(f"--gpu {spec}: cannot read ({str(e).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise SimError(f"--gpu {spec}: a GPU file holds one mapping of {', '.join(_REQUIRED)}")
        return gpu_from_dict(data, name=str(data.get("name", path.stem)), where=str(spec))
    table = _table()
    by_lower = {k.lower(): k for k in table}
    key = by_lower.get(str(spec).lower())
    if key is None:
        raise SimError(
            f"--gpu: unknown GPU {str(spec)!r}; known: {', '.join(table)} "
            "(or a YAML file of your own)"
        )
    return gpu_from_dict(table[key], name=key, where=f"gpus.yaml: {key}")


def gpu_from_dict(d: dict[str, Any], name: str, where: str) -> GpuSpec:
    missing = [k for k in _REQUIRED if k not in d]
    if missing:
        raise SimError(f"{where}: missing {', '.join(missing)}")
    peaks = d["peak_tflops"]
    if not isinstance(peaks, dict) or not ({"bf16", "fp16"} & set(peaks)):
        raise SimError(f"{where}: peak_tflops must map dtypes (bf16, fp16, fp8) to TFLOP/s")
    for k in (*_REQUIRED[1:], "reported_memory_mib", "host_link_gb_s"):
        v = d.get(k)
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0):
            raise SimError(f"{where}: {k} must be a number > 0, got {v!r}")
    for k, v in peaks.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0:
            raise SimError(f"{where}: peak_tflops.{k} must be a number > 0, got {v!r}")
    reported = d.get("reported_memory_mib")
    return GpuSpec(
        name=name,
        peak_flops={str(k): float(v) * 1e12 for k, v in peaks.items()},
        memory_bandwidth_bytes_s=float(d["memory_bandwidth_tb_s"]) * 1e12,
        memory_bytes=float(reported) * MIB if reported else float(d["memory_gib"]) * GIB,
        interconnect_bytes_s=float(d["interconnect_gb_s"]) * 1e9,
        # PCIe Gen4 x16 when a user's file does not say.
        host_link_bytes_s=float(d.get("host_link_gb_s", 64)) * 1e9,
        interconnect=str(d.get("interconnect", "")),
        source=str(d.get("source", "")),
    )
