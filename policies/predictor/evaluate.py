"""Evaluation: how well a predictor orders a trace's requests by true output length, next
to the prompt-length heuristic (score = -prompt_tokens) on the same rows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from policies.predictor.checkpoint import load_predictor
from policies.predictor.data import read_prompts
from policies.predictor.metrics import ranking_metrics
from policies.predictor.scoring import score_prompts


def evaluate(
    model_dir: str | Path,
    trace: str | Path,
    batch_size: int = 32,
    device: str = "cpu",
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    predictor = load_predictor(model_dir, device)
    df, meta = read_prompts(trace)
    lengths = df["output_tokens"].to_numpy(np.int64)
    scores = score_prompts(predictor, df["prompt"].tolist(), batch_size, on_batch)
    heuristic = -df["prompt_tokens"].to_numpy(np.float64)
    trained_on = predictor.info.get("trace", {})
    return {
        "model": Path(model_dir).resolve().name,
        "trace": Path(trace).name,
        "rows": len(df),
        "trace_tokenizer": meta.get("tokenizer"),
        "train_trace_tokenizer": trained_on.get("tokenizer"),
        "predictor": ranking_metrics(scores, lengths),
        "prompt_length": ranking_metrics(heuristic, lengths),
    }
