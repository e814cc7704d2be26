"""Stand-ins for vLLM objects and small traces, shared by the live tests."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class FakeSamplingParams:
    extra_args: dict | None = None
    max_tokens: int = 16
    ignore_eos: bool = True


@dataclass(eq=False)
class FakeRequest:
    """The attributes of vllm.v1.request.Request the plug-in reads."""

    request_id: str
    num_prompt_tokens: int = 10
    num_output_tokens: int = 0
    priority: int = 0
    arrival_time: float = 0.0
    finished: bool = False
    sampling_params: FakeSamplingParams = field(default_factory=FakeSamplingParams)

    def is_finished(self) -> bool:
        return self.finished


def make_trace(n: int = 40, rate: float = 50.0, seed: int = 0, burst: int = 0) -> pd.DataFrame:
    """Short prompts and outputs, a score column that ranks short outputs first."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1 / rate, n - burst)
    out = rng.integers(4, 48, n)
    return pd.DataFrame({
        "request_id": np.arange(n),
        "arrival_s": np.concatenate([np.zeros(burst), np.cumsum(gaps)]),
        "prompt_tokens": rng.integers(8, 96, n),
        "output_tokens": out,
        "score_len": -out + rng.normal(0, 4, n),
    })
