"""Prompts and true output lengths from a trace file, checked for what a predictor needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from predictor.errors import PredictorError
from traces.io import read_trace


def read_prompts(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The trace at path; PredictorError unless every row has its prompt text."""
    df, meta = read_trace(path)
    if "prompt" not in df.columns:
        raise PredictorError(
            f"{path}: the trace has no prompt text (column 'prompt'); "
            "build it from a source that keeps prompts"
        )
    missing = df["prompt"].isna().to_numpy()
    if missing.any():
        row = int(missing.nonzero()[0][0])
        raise PredictorError(
            f"{path}: row {row} (and {int(missing.sum()) - 1} more) has no prompt text"
        )
    if len(df) == 0:
        raise PredictorError(f"{path}: the trace has no rows")
    return df, meta


def score_name(model_dir: str | Path, name: str | None) -> str:
    """The suffix of a score_<name> column: given, or the model directory's name."""
    name = name or Path(model_dir).resolve().name
    if not name.replace("-", "_").replace(".", "_").isidentifier():
        raise PredictorError(f"score name {name!r}: use letters, digits, '-', '_', '.'")
    return name


def provenance(path: str | Path, df: pd.DataFrame, meta: dict[str, Any]) -> dict[str, Any]:
    """Where training data came from, to save beside a model (file name, not its path)."""
    keep = ("source", "tokenizer", "offset", "limit", "rows_read", "truncated", "created_at")
    return {"file": Path(path).name, "rows": len(df), **{k: meta[k] for k in keep if k in meta}}


def split_train_val(n: int, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Row indices: the first (1 - val_fraction) for training, the last for validation."""
    n_val = max(1, round(n * val_fraction))
    if n - n_val < 2:
        raise PredictorError(f"the trace has {n} rows: too few to train and validate on")
    return np.arange(n - n_val), np.arange(n - n_val, n)
