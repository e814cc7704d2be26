"""Content keys of KV blocks, from a trace's `hash_ids`, for the prefix cache.

A trace gives one id per `hash_block_tokens` prompt tokens, equal ids after equal
predecessors meaning equal content (Mooncake's convention). vLLM hashes each full block
of `block_size` tokens chained over the blocks before it. Here every prefix of ids gets a
chain number (equal prefixes, equal numbers), and an engine block's key is the chain
number of the hash block holding its last token with that token's offset in it: two
requests with equal keys at a position agree on every token up to that block's end.
Where block sizes do not divide, this can miss a hit vLLM would find; it never invents one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sim.errors import SimError


@dataclass(frozen=True)
class KeyTable:
    """All requests' full-prompt-block keys in one array: request i's are
    keys[start[i] : start[i] + count[i]], in block order."""

    keys: np.ndarray
    start: np.ndarray
    count: np.ndarray

    @classmethod
    def empty(cls, n: int) -> KeyTable:
        z = np.zeros(n, np.int64)
        return cls(np.zeros(0, np.int64), z, z)


def _flatten(hash_ids: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lens = np.fromiter((len(h) for h in hash_ids), dtype=np.int64, count=len(hash_ids))
    nonempty = [np.asarray(h, dtype=np.int64) for h in hash_ids if len(h)]
    flat = np.concatenate(nonempty) if nonempty else np.zeros(0, np.int64)
    starts = np.concatenate(([0], np.cumsum(lens)[:-1])).astype(np.int64)
    return flat, starts, lens


def chain_numbers(flat: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """One number per id, equal exactly where the ids up to it are equal (any requests).
    Level by level (position j of every request at once) while many requests are that
    long; the few long ones left are walked with a dictionary."""
    prev = np.full(len(lens), -1, dtype=np.int64)
    chain = np.zeros(len(flat), np.int64)
    base, j = 0, 0
    active = np.flatnonzero(lens > 0)
    while len(active) >= _WIDE:
        at = starts[active] + j
        # The pairs (previous chain number, id) numbered in sorted order: packed into one
        # int64 that sorts as the pair does (ids by their rank), a 1-d unique is cheap.
        x_uniq, x_rank = np.unique(flat[at], return_inverse=True)
        packed = (prev[active] + 1) * len(x_uniq) + x_rank.reshape(-1)
        uniq, inv = np.unique(packed, return_inverse=True)
        ids = base + inv.reshape(-1)
        chain[at] = ids
        prev[active] = ids
        base += len(uniq)
        j += 1
        active = active[lens[active] > j]
    seen: dict[tuple[int, int], int] = {}
    for i in active.tolist():
        p = int(prev[i])
        lo, hi = int(starts[i]) + j, int(starts[i] + lens[i])
        for at, x in enumerate(flat[lo:hi].tolist(), start=lo):
            c = seen.get((p, x))
            if c is None:
                c = seen[(p, x)] = base
                base += 1
            chain[at] = p = c
    return chain


_WIDE = 256  # below this many requests at a level, a dictionary beats np.unique


def block_keys(
    hash_ids: Sequence[Sequence[int]] | None,
    prompt_tokens: np.ndarray,
    hash_block_tokens: int | None,
    block_size: int,
) -> KeyTable:
    """The keys (int64 >= 0) of every request's full prompt blocks of block_size tokens."""
    n = len(prompt_tokens)
    if hash_ids is None:
        return KeyTable.empty(n)
    if not hash_block_tokens or int(hash_block_tokens) < 1:
        raise SimError("trace has hash_ids but no hash_block_tokens >= 1 in its metadata")
    h = int(hash_block_tokens)
    flat, starts, lens = _flatten(hash_ids)
    chain = chain_numbers(flat, starts, lens)
    full = np.minimum(np.asarray(prompt_tokens, np.int64), lens * h) // block_size
    total = int(full.sum())
    out_start = np.concatenate(([0], np.cumsum(full)[:-1])).astype(np.int64)
    req = np.repeat(np.arange(n, dtype=np.int64), full)
    pos = np.arange(total, dtype=np.int64) - out_start[req]
    last = (pos + 1) * block_size - 1
    keys = chain[starts[req] + last // h] * h + last % h
    return KeyTable(keys, out_start, full)
