"""Prompt token ids of the traced length for each request.

Lengths must match the trace exactly (prefill cost depends on them), so a prompt's own
tokens are cut or repeated to prompt_tokens; without a tokenizer or prompt text the ids
are synthetic, seeded per request, drawn away from the special ids at the vocabulary's
ends (random ids also share no prefix, so prefix caching cannot skew a replay).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

LOW_ID = 100  # below: special and byte tokens in most vocabularies


def synthetic_ids(n: int, vocab_size: int, seed: int, index: int) -> list[int]:
    rng = np.random.default_rng([seed, index])
    high = max(LOW_ID + 1, vocab_size - LOW_ID)
    return rng.integers(LOW_ID, high, n).tolist()


def fit_length(ids: list[int], n: int) -> list[int]:
    """ids cut to n, or repeated until n long."""
    if not ids:
        return []
    reps = -(-n // len(ids))
    return (ids * reps)[:n]


def prompt_token_ids(
    df: pd.DataFrame, vocab_size: int, tokenizer_file: Path | None = None, seed: int = 0
) -> tuple[list[list[int]], str]:
    """One id list per row of df (its prompt_tokens long) and how they were made."""
    lengths = df["prompt_tokens"].to_numpy(np.int64)
    texts = df["prompt"].tolist() if "prompt" in df.columns else None
    tok = None
    if tokenizer_file is not None and texts is not None:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(tokenizer_file))
    out = []
    for i, n in enumerate(lengths):
        ids: list[int] = []
        if tok is not None and isinstance(texts[i], str) and texts[i]:
            ids = fit_length(tok.encode(texts[i], add_special_tokens=False).ids, int(n))
        out.append(ids or synthetic_ids(int(n), vocab_size, seed, i))
    how = f"prompt text through {tokenizer_file.name}" if tok is not None else "synthetic ids"
    return out, how
