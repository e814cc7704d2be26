"""Engine configuration: the knobs of the modelled vLLM server, in vLLM's own names."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from sim.errors import SimError

ENGINE_MODES = ("vllm-v1", "ltr-paper")


@dataclass(frozen=True)
class EngineConfig:
    """What `vllm serve` would be told, plus the simulator's own switches.

    Defaults: block_size 16 (vLLM's), max_num_seqs 256, max_num_batched_tokens 8192
    (vLLM V1's values for its OpenAI server on large GPUs, release 0.10 and later; read
    your server's log and set them). num_gpu_blocks None means: take it from the
    profile, or derive it from the profile's memory figures.
    """

    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    block_size: int = 16
    num_gpu_blocks: int | None = None
    max_model_len: int | None = None
    chunked_prefill: bool = True
    # Automatic prefix caching (needs a trace with hash_ids to hit anything). None: the
    # mode's default, on for vllm-v1 (vLLM V1's default), off for ltr-paper (vLLM 0.4.1's).
    enable_prefix_caching: bool | None = None
    # "vllm-v1": running first, then waiting in policy order, recompute preemption.
    # "ltr-paper": all requests sorted together each step, stop at the first misfit,
    # swap preemption (vllm-ltr on vLLM 0.4.1).
    engine_mode: str = "vllm-v1"
    # Preemption: "recompute" (vLLM V1, the only choice in mode vllm-v1) or "swap"
    # (default in mode ltr-paper, with the profile's swap_block_s per block moved).
    preemption: str = "default"
    # Advance identical decode steps in one event (False: one event per step).
    fast_forward: bool = True
    # Synthetic data generation mode: stop once this many requests have finished.
    stop_after: int | None = None
    seed: int = 0

    def validate(self) -> None:
        if self.engine_mode not in ENGINE_MODES:
            raise SimError(
                f"--engine-mode: unknown mode {self.engine_mode!r}; "
                f"choose one of {', '.join(ENGINE_MODES)}"
            )
        for name in ("max_num_seqs", "max_num_batched_tokens", "block_size"):
            if getattr(self, name) < 1:
                raise SimError(f"--{name.replace('_', '-')}: must be >= 1")
        if self.max_model_len is not None and self.max_model_len < 1:
            raise SimError("--max-model-len: must be >= 1")
        if self.num_gpu_blocks is not None and self.num_gpu_blocks < 1:
            raise SimError("--num-gpu-blocks: must be >= 1")
        if self.max_num_batched_tokens < self.max_num_seqs:
            # vLLM refuses this too: every running request must be able to decode each step.
            raise SimError(
                f"--max-batched-tokens ({self.max_num_batched_tokens}) must be >= "
                f"--max-num-seqs ({self.max_num_seqs}), as vLLM requires"
            )
        if self.preemption not in ("default", "recompute", "swap"):
            raise SimError("--preemption: choose default, recompute or swap")
        if self.engine_mode == "vllm-v1" and self.preemption == "swap":
            raise SimError("--preemption swap needs --engine-mode ltr-paper (vLLM V1 recomputes)")
        if self.stop_after is not None and self.stop_after < 1:
            raise SimError("--stop-after: must be >= 1")

    def prefix_caching_enabled(self) -> bool:
        if self.enable_prefix_caching is None:
            return self.engine_mode == "vllm-v1"
        return self.enable_prefix_caching

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MemoryModel:
    """What derives num_gpu_blocks when the user does not give it, as vLLM does:
    blocks = floor((gpu_mem * utilization - weights - activation peak) / block bytes)."""

    gpu_memory_bytes: float
    weight_bytes: float
    kv_bytes_per_token: float
    activation_peak_bytes: float = 0.0
    gpu_memory_utilization: float = 0.9
    notes: dict = field(default_factory=dict)

    def num_gpu_blocks(self, block_size: int) -> int:
        free = (
            self.gpu_memory_bytes * self.gpu_memory_utilization
            - self.weight_bytes
            - self.activation_peak_bytes
        )
        blocks = math.floor(free / (block_size * self.kv_bytes_per_token))
        if blocks < 1:
            raise SimError(
                "the model does not fit: no memory left for the KV cache "
                f"({self.formula(block_size)})"
            )
        return blocks

    def formula(self, block_size: int) -> str:
        gib = 1024**3
        return (
            f"num_gpu_blocks = floor(({self.gpu_memory_bytes / gib:.1f} GiB x "
            f"{self.gpu_memory_utilization} - {self.weight_bytes / gib:.2f} GiB weights - "
            f"{self.activation_peak_bytes / gib:.2f} GiB activations) / ({block_size} tokens x "
            f"{self.kv_bytes_per_token / 1024:.0f} KiB))"
        )
