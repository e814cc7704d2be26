"""Evaluation: how well a predictor orders a trace's requests by true output length, next
to the prompt-length heuristic (score = -prompt_tokens) on the same rows. For a
distributional predictor also how well its distributions fit (metrics.distribution_metrics),
next to the prompt-blind baseline: the training trace's marginal histogram over the same
bins, saved in predictor.json at training time."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from policies.lengthdist import NUM_BINS, from_counts
from predictor.checkpoint import Predictor, load_predictor
from predictor.data import read_prompts
from predictor.metrics import distribution_metrics, ranking_metrics
from predictor.scoring import predict_prompts


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
    scores, dists = predict_prompts(predictor, df["prompt"].tolist(), batch_size, on_batch)
    heuristic = -df["prompt_tokens"].to_numpy(np.float64)
    trained_on = predictor.info.get("trace", {})
    result = {
        "model": Path(model_dir).resolve().name,
        "trace": Path(trace).name,
        "rows": len(df),
        "trace_tokenizer": meta.get("tokenizer"),
        "train_trace_tokenizer": trained_on.get("tokenizer"),
        "predictor": ranking_metrics(scores, lengths),
        "prompt_length": ranking_metrics(heuristic, lengths),
    }
    if dists is not None:
        marginal = train_marginal(predictor)
        result["distribution"] = {
            "predictor": distribution_metrics(dists, lengths),
            "marginal": None
            if marginal is None
            else distribution_metrics(np.tile(marginal, (len(lengths), 1)), lengths),
        }
    return result


def train_marginal(predictor: Predictor) -> np.ndarray | None:
    """The training lengths' bin distribution saved with the model (None if it has none)."""
    saved = predictor.info.get("train_marginal")
    if not saved or len(saved["bin_counts"]) != NUM_BINS:
        return None
    return from_counts(np.asarray(saved["bin_counts"]), float(saved["pseudo_count"]))
