"""Small traces made in the test: a learnable synthetic task for the predictor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from traces.io import write_trace


def synthetic_trace(path: Path, n: int = 240, seed: int = 0, prompts: bool = True) -> Path:
    """Prompt k times the word "go" asks for about 20*k output tokens (k in 1..12)."""
    rng = np.random.default_rng(seed)
    k = rng.integers(1, 13, size=n)
    df = pd.DataFrame(
        {
            "request_id": np.arange(n, dtype=np.int64),
            "arrival_s": np.arange(n, dtype=np.float64) * 0.1,
            "prompt_tokens": rng.integers(1, 50, size=n).astype(np.int64),  # unrelated here
            "output_tokens": (20 * k + rng.integers(0, 10, size=n)).astype(np.int64),
        }
    )
    if prompts:
        df["prompt"] = ["go " * int(i) + "now" for i in k]
    write_trace(df, path, {"source": "synthetic", "tokenizer": "words"})
    return path


@pytest.fixture(scope="session")
def make_trace():
    return synthetic_trace
