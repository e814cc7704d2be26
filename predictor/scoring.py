"""Scoring prompts with a predictor, batched: higher score = predicted shorter output.
A distributional predictor (--loss nll or quantile) also gives each prompt a probability
vector over the length bins of policies/lengthdist.py, written as dist_<name>_NN columns."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from policies.lengthdist import dist_columns
from predictor.checkpoint import Predictor, load_predictor
from predictor.data import read_prompts, score_name
from predictor.errors import PredictorError
from predictor.model import collate
from predictor.tokenizer import encode, format_prompt
from traces.io import write_trace
from traces.schema import SCORE_PREFIX


def encode_prompts(predictor: Predictor, prompts: Sequence[str]) -> list[list[int]]:
    texts = [format_prompt(predictor.template, p) for p in prompts]
    return encode(predictor.tokenizer, texts, predictor.max_prompt_tokens)


@torch.no_grad()
def head_outputs(
    predictor: Predictor,
    ids: list[list[int]],
    batch_size: int = 32,
    on_batch: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """The head's raw outputs for tokenized prompts, [n, num_outputs] float32 on the CPU.
    Batches group prompts of similar length (less padding); the result is in input order.
    on_batch(n) is called after each batch of n prompts."""
    model = predictor.model
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    pad_id = predictor.tokenizer.pad_token_id
    order = np.argsort([len(x) for x in ids], kind="stable")
    outputs = torch.empty((len(ids), predictor.objective.spec.num_outputs), dtype=torch.float32)
    for start in range(0, len(ids), batch_size):
        chunk = order[start : start + batch_size]
        input_ids, mask = collate([ids[i] for i in chunk], pad_id, device)
        outputs[torch.as_tensor(chunk)] = model(input_ids, mask).float().cpu()
        if on_batch:
            on_batch(len(chunk))
    model.train(was_training)
    return outputs


def predict_ids(
    predictor: Predictor,
    ids: list[list[int]],
    batch_size: int = 32,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Scores of tokenized prompts (float64, [n]) and, for a distributional predictor, their
    probabilities over the length bins (float64, [n, NUM_BINS]; None for a ranker)."""
    outputs = head_outputs(predictor, ids, batch_size, on_batch)
    objective = predictor.objective
    scores = objective.score(outputs).cpu().numpy().astype(np.float64)
    dists = objective.distribution(outputs) if objective.spec.distributional else None
    return scores, dists


def score_ids(
    predictor: Predictor,
    ids: list[list[int]],
    batch_size: int = 32,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Scores of tokenized prompts, in input order."""
    return predict_ids(predictor, ids, batch_size, on_batch)[0]


def predict_prompts(
    predictor: Predictor,
    prompts: Sequence[str],
    batch_size: int = 32,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Scores and (distributional predictors) bin probabilities of prompt texts."""
    return predict_ids(predictor, encode_prompts(predictor, prompts), batch_size, on_batch)


def score_prompts(
    predictor: Predictor,
    prompts: Sequence[str],
    batch_size: int = 32,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Scores of prompt texts (templated and cut as in training)."""
    return predict_prompts(predictor, prompts, batch_size, on_batch)[0]


def distributions(
    predictor: Predictor,
    prompts: Sequence[str],
    batch_size: int = 32,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Per-prompt probabilities over the length bins of policies/lengthdist.py, [n,
    NUM_BINS] float64, rows summing to 1; PredictorError for a ranking predictor."""
    if not predictor.objective.spec.distributional:
        raise PredictorError(
            f"a {predictor.objective.spec.describe()} model predicts no distribution"
        )
    return predict_prompts(predictor, prompts, batch_size, on_batch)[1]


def score_column(name: str) -> str:
    return f"{SCORE_PREFIX}{name}"


def score_trace(
    model_dir: str | Path,
    trace: str | Path,
    out: str | Path,
    name: str | None = None,
    batch_size: int = 32,
    device: str = "cpu",
    on_batch: Callable[[int], None] | None = None,
) -> str:
    """Add (or replace) the column score_<name> in trace, and for a distributional model
    dist_<name>_00 ... (bin probabilities, float64, rows summing to 1), written to out;
    return the score column's name. name defaults to the model directory's name."""
    name = score_name(model_dir, name)
    predictor = load_predictor(model_dir, device)
    df, meta = read_prompts(trace)
    column = score_column(name)
    values, dists = predict_prompts(predictor, df["prompt"].tolist(), batch_size, on_batch)
    df[column] = values
    df = df.drop(columns=[c for c in dist_columns(name) if c in df.columns])  # stale ones
    if dists is not None:
        dist_df = pd.DataFrame(dists, columns=dist_columns(name), index=df.index)
        df = pd.concat([df, dist_df], axis=1)
    scores = dict(meta.get("scores", {}))
    scores[name] = {
        "model": Path(model_dir).resolve().name,
        "backbone": predictor.info.get("backbone"),
        "loss": predictor.objective.spec.describe(),
        "trained_on": predictor.info.get("trace", {}).get("file"),
        "distribution": dists is not None,
    }
    write_trace(df, out, {**meta, "scores": scores})
    return column
