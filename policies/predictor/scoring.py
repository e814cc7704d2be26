"""Scoring prompts with a predictor, batched: higher score = predicted shorter output."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from policies.predictor.checkpoint import Predictor, load_predictor
from policies.predictor.data import read_prompts
from policies.predictor.errors import PredictorError
from policies.predictor.model import collate
from policies.predictor.tokenizer import encode, format_prompt
from traces.io import write_trace
from traces.schema import SCORE_PREFIX


def encode_prompts(predictor: Predictor, prompts: Sequence[str]) -> list[list[int]]:
    texts = [format_prompt(predictor.template, p) for p in prompts]
    return encode(predictor.tokenizer, texts, predictor.max_prompt_tokens)


@torch.no_grad()
def score_ids(
    predictor: Predictor,
    ids: list[list[int]],
    batch_size: int = 32,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Scores of tokenized prompts. Batches group prompts of similar length (less padding);
    the result is in input order. on_batch(n) is called after each batch of n prompts."""
    model = predictor.model
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    pad_id = predictor.tokenizer.pad_token_id
    order = np.argsort([len(x) for x in ids], kind="stable")
    scores = np.empty(len(ids), dtype=np.float64)
    for start in range(0, len(ids), batch_size):
        chunk = order[start : start + batch_size]
        input_ids, mask = collate([ids[i] for i in chunk], pad_id, device)
        out = predictor.objective.score(model(input_ids, mask).float())
        scores[chunk] = out.cpu().numpy()
        if on_batch:
            on_batch(len(chunk))
    model.train(was_training)
    return scores


def score_prompts(
    predictor: Predictor,
    prompts: Sequence[str],
    batch_size: int = 32,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Scores of prompt texts (templated and cut as in training)."""
    return score_ids(predictor, encode_prompts(predictor, prompts), batch_size, on_batch)


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
    """Add (or replace) the column score_<name> in trace, written to out; return its name.
    name defaults to the model directory's name."""
    name = name or Path(model_dir).resolve().name
    if not name.replace("-", "_").replace(".", "_").isidentifier():
        raise PredictorError(f"score name {name!r}: use letters, digits, '-', '_', '.'")
    predictor = load_predictor(model_dir, device)
    df, meta = read_prompts(trace)
    column = score_column(name)
    df[column] = score_prompts(predictor, df["prompt"].tolist(), batch_size, on_batch)
    scores = dict(meta.get("scores", {}))
    scores[name] = {
        "model": Path(model_dir).resolve().name,
        "backbone": predictor.info.get("backbone"),
        "loss": predictor.objective.spec.describe(),
        "trained_on": predictor.info.get("trace", {}).get("file"),
    }
    write_trace(df, out, {**meta, "scores": scores})
    return column
