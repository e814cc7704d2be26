"""Prompt token ids of the traced length for each request.

Lengths must match the trace exactly (prefill cost depends on them), so a prompt's own
tokens are cut or repeated to prompt_tokens. Without a tokenizer or prompt text, a trace
with hash_ids gets ids whose sharing follows them block by block
(traces.prefix.token_ids_from_hash_ids), so vLLM's own block hashing sees the prefixes
the trace has; without hash_ids the ids are synthetic, seeded per request, and share no
prefix. Either way they are drawn away from the special ids at the vocabulary's ends.

A later turn of a session is built when it is sent (continue_session): the previous
turn's prompt and the answer vLLM gave, then the rest of its own ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from traces.prefix import token_ids_from_hash_ids

LOW_ID = 100  # below, and as many at the top: special and byte tokens in most vocabularies


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
    df: pd.DataFrame,
    vocab_size: int,
    tokenizer_file: Path | None = None,
    seed: int = 0,
    hash_block_tokens: int | None = None,
) -> tuple[list[list[int]], str]:
    """One id list per row of df (its prompt_tokens long) and how they were made:
    prompt text through the tokenizer, else hash_ids (with hash_block_tokens), else
    synthetic ids."""
    lengths = df["prompt_tokens"].to_numpy(np.int64)
    texts = df["prompt"].tolist() if "prompt" in df.columns else None
    hashes = df["hash_ids"].tolist() if "hash_ids" in df.columns and hash_block_tokens else None
    tok = None
    if tokenizer_file is not None and texts is not None:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(tokenizer_file))
    out = []
    used_text = used_hash = False
    for i, n in enumerate(lengths):
        ids: list[int] = []
        if tok is not None and isinstance(texts[i], str) and texts[i]:
            ids = fit_length(tok.encode(texts[i], add_special_tokens=False).ids, int(n))
            used_text = True
        if not ids and hashes is not None and hashes[i] is not None:
            ids = token_ids_from_hash_ids(
                hashes[i], int(n), int(hash_block_tokens), vocab_size, LOW_ID
            )
            used_hash = True
        out.append(ids or synthetic_ids(int(n), vocab_size, seed, i))
    how = [
        f"prompt text through {tokenizer_file.name}" if used_text else "",
        f"hash_ids (blocks of {hash_block_tokens})" if used_hash else "",
    ]
    return out, " and ".join(h for h in how if h) or "synthetic ids"


def continue_session(
    previous_prompt: Sequence[int], previous_output: Sequence[int], own: Sequence[int]
) -> list[int]:
    """A later turn's prompt: the conversation so far (the previous turn's prompt and the
    answer the engine gave it), then its own ids from there on, len(own) in all."""
    so_far = [*previous_prompt, *previous_output][: len(own)]
    return so_far + list(own[len(so_far) :])
