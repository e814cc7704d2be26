"""Token counts and hash_ids of a text source's records, by the trace's tokenizer.

Each message is tokenized on its own, without a chat template; blank text counts as 0
tokens. A first-turn record's prompt is its user message. A turn of a session (--turns
all) is the conversation so far: the ids of every earlier message, user and assistant,
then its own user message, so prompt_tokens[k] = prompt_tokens[k-1] + output_tokens[k-1]
+ len(user k) exactly, and its hash_ids start with the blocks of all that came before.
"""

from __future__ import annotations

import numpy as np

from traces.prefix import BlockHasher
from traces.progress import Reporter
from traces.records import SourceRecords
from traces.tokenize import BATCH, TokenCounter


def count_prompts(
    records: SourceRecords, counter: TokenCounter, block_tokens: int | None, reporter: Reporter
) -> None:
    """Fill records' prompt_tokens, output_tokens (from response text, if any) and hash_ids.

    block_tokens None leaves hash_ids out (--no-hash-ids).
    """
    if block_tokens is None:
        _count_only(records, counter, reporter)
        return
    n = len(records)
    sessions = records.session is not None
    prompt_tokens = np.zeros(n, dtype=np.int64)
    output_tokens = np.zeros(n, dtype=np.int64) if records.response is not None else None
    hash_ids: list[np.ndarray] = []
    hasher = BlockHasher(block_tokens)
    with reporter.task(f"tokenizing and hashing ({counter.name})", n) as advance:
        for start in range(0, n, BATCH):
            stop = min(n, start + BATCH)
            prompts = counter.encode_batch(_unblank(records.prompt[start:stop]))
            replies = None
            if records.response is not None:
                replies = counter.encode_batch(_unblank(records.response[start:stop]))
            for i in range(start, stop):
                if not sessions or records.turn[i] == 0:
                    hasher = BlockHasher(block_tokens)
                hasher.extend(prompts[i - start])
                prompt_tokens[i] = hasher.num_tokens
                hash_ids.append(np.asarray(hasher.hash_ids(), dtype=np.int64))
                if replies is not None:
                    output_tokens[i] = len(replies[i - start])
                    if sessions:
                        hasher.extend(replies[i - start])
            advance(stop - start)
    records.prompt_tokens = prompt_tokens
    if output_tokens is not None:
        records.output_tokens = output_tokens
    records.hash_ids = hash_ids
    records.hash_block_tokens = block_tokens


def _unblank(texts: list[str]) -> list[str]:
    """Blank text as "", so that it has no token ids (it counts as 0 tokens)."""
    return [t if t.strip() else "" for t in texts]


def _count_only(records: SourceRecords, counter: TokenCounter, reporter: Reporter) -> None:
    """Counts without ids; a session turn's prompt still holds the conversation so far."""
    texts = records.prompt + (records.response or [])
    counts = counter.count(texts, reporter)
    blank = np.fromiter((not t.strip() for t in texts), dtype=bool, count=len(texts))
    counts[blank] = 0
    n = len(records)
    user = counts[:n]
    if records.response is not None:
        records.output_tokens = counts[n:]
    if records.session is None:
        records.prompt_tokens = user
        return
    prompt = np.zeros(n, dtype=np.int64)
    before = 0  # tokens of the session's earlier messages
    for i in range(n):
        if records.turn[i] == 0:
            before = 0
        prompt[i] = before + user[i]
        before = prompt[i] + records.output_tokens[i]
    records.prompt_tokens = prompt
