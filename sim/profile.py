"""Step-time profiles: how long one engine step takes, from its batch composition.

t = c0 + prefill_token * P + prefill_sq * sum(chunk^2) + decode_req * D
      + decode_ctx_token * C + swap_block * B

with P prefill tokens in the step, D decode requests, C their summed context (tokens)
and B blocks swapped in or out. A profile file (YAML or JSON) holds the coefficients,
which model, GPU and vLLM version they describe, how they were obtained, and the fit
error where they were fitted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sim.config import MemoryModel
from sim.errors import SimError

COEFFICIENTS = (
    "c0_s",
    "prefill_token_s",
    "prefill_sq_s",
    "decode_req_s",
    "decode_ctx_token_s",
    "swap_block_s",
)
DEFAULT_PROFILE = "llama3-8b_h100_first-principles"


@dataclass(frozen=True)
class StepTimeProfile:
    name: str
    c0_s: float
    prefill_token_s: float
    prefill_sq_s: float
    decode_req_s: float
    decode_ctx_token_s: float
    swap_block_s: float = 0.0
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

    def step_time(self, prefill_tokens, prefill_sq, decode_reqs, decode_ctx, swap_blocks=0):
        """Works on Python numbers and on numpy arrays with the same operation order,
        so the fast and step-by-step engines add up identical floats."""
        return (
            self.c0_s
            + self.prefill_token_s * prefill_tokens
            + self.prefill_sq_s * prefill_sq
            + self.decode_req_s * decode_reqs
            + self.decode_ctx_token_s * decode_ctx
            + self.swap_block_s * swap_blocks
        )

    @property
    def label(self) -> str:
        tag = " [FIRST-PRINCIPLES ESTIMATE, not measured]" if self.source != "measured" else ""
        return f"{self.name} ({self.model} on {self.gpu}){tag}"


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
    coeffs = data.get("coefficients")
    if not isinstance(coeffs, dict):
        raise SimError(f"{where}: missing 'coefficients' mapping")
    values = {}
    for key in COEFFICIENTS:
        v = coeffs.get(key, 0.0 if key == "swap_block_s" else None)
        if v is None:
            raise SimError(f"{where}: coefficients.{key} is missing")
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            raise SimError(f"{where}: coefficients.{key} must be a number >= 0, got {v!r}")
        values[key] = float(v)
    unknown = set(coeffs) - set(COEFFICIENTS)
    if unknown:
        raise SimError(f"{where}: unknown coefficient(s) {', '.join(sorted(unknown))}")
    if values["c0_s"] + values["decode_req_s"] <= 0:
        raise SimError(f"{where}: c0_s + decode_req_s must be > 0 (a step cannot take no time)")
    memory = None
    if isinstance(data.get("memory"), dict):
        m = data["memory"]
        try:
            memory = MemoryModel(
                gpu_memory_bytes=float(m["gpu_memory_bytes"]),
                weight_bytes=float(m["weight_bytes"]),
                kv_bytes_per_token=float(m["kv_bytes_per_token"]),
                activation_peak_bytes=float(m.get("activation_peak_bytes", 0.0)),
                gpu_memory_utilization=float(m.get("gpu_memory_utilization", 0.9)),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise SimError(f"{where}: bad memory section ({e})") from None
    source = str(data.get("source", "measured"))
    if source not in ("measured", "first-principles"):
        raise SimError(f"{where}: source must be 'measured' or 'first-principles', got {source!r}")
    return StepTimeProfile(
        name=str(data.get("name", Path(where).stem)),
        **values,
        model=str(data.get("model", "")),
        gpu=str(data.get("gpu", "")),
        vllm_version=data.get("vllm_version"),
        source=source,
        method=str(data.get("method", "")),
        fit_error=data.get("fit_error"),
        memory=memory,
        engine=dict(data.get("engine") or {}),
        path=where,
    )
