"""Prefix identity of prompts: chained block hash ids, token ids back from them, reuse.

A prompt's token ids are cut into blocks of `block_tokens` (the last one may be partial);
block j's id is blake2b over the previous block's id (0 before the first) and the
block's ids, as little-endian int64, read back as a signed int64. So equal ids at equal
positions mean equal tokens up to and including that block, and the ids are the same on
every machine and in every process (Python's hash() is salted per process; never used).
This is Mooncake's `hash_ids` convention (its public traces use blocks of 512 tokens),
and vLLM's own prefix cache chains its block hashes the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

VLLM_BLOCK_TOKENS = 16  # vLLM's default block size: our traces' default hash block
_ROOT = 0  # the "previous id" of a prompt's first block
_TOKENS_PER_DIGEST = 16  # a 64-byte blake2b digest gives 16 uint32 draws


def _block_id(prev: int, block: bytes) -> int:
    h = hashlib.blake2b(prev.to_bytes(8, "little", signed=True) + block, digest_size=8)
    return int.from_bytes(h.digest(), "little", signed=True)


def _as_bytes(ids: Sequence[int] | np.ndarray) -> bytes:
    return np.asarray(ids, dtype="<i8").tobytes()


class BlockHasher:
    """Chained block ids of a token stream that grows (a conversation, turn by turn).

    `hash_ids()` after extending by a prompt's ids equals hash_ids_from_token_ids of the
    whole stream so far, so a session's turns are hashed once, not once per turn.
    """

    def __init__(self, block_tokens: int) -> None:
        if block_tokens < 1:
            raise ValueError(f"block_tokens must be >= 1, got {block_tokens}")
        self.block_tokens = block_tokens
        self.num_tokens = 0
        self._full: list[int] = []  # ids of the complete blocks so far
        self._tail = b""  # the tokens after the last complete block, as <i8 bytes

    def extend(self, ids: Sequence[int] | np.ndarray) -> BlockHasher:
        data = self._tail + _as_bytes(ids)
        size = 8 * self.block_tokens
        whole = len(data) - len(data) % size
        prev = self._full[-1] if self._full else _ROOT
        for start in range(0, whole, size):
            prev = _block_id(prev, data[start : start + size])
            self._full.append(prev)
        self._tail = data[whole:]
        self.num_tokens += len(ids)
        return self

    def hash_ids(self) -> list[int]:
        """Ids of the stream's blocks, the partial last block included."""
        if not self._tail:
            return list(self._full)
        prev = self._full[-1] if self._full else _ROOT
        return [*self._full, _block_id(prev, self._tail)]

    def copy(self) -> BlockHasher:
        other = BlockHasher(self.block_tokens)
        other.num_tokens, other._full, other._tail = self.num_tokens, list(self._full), self._tail
        return other


def hash_ids_from_token_ids(ids: Sequence[int], block_tokens: int) -> list[int]:
    """Chained int64 ids, one per block of `block_tokens` token ids (the last may be partial)."""
    return BlockHasher(block_tokens).extend(ids).hash_ids()


def num_blocks(prompt_tokens: int | np.ndarray, block_tokens: int) -> int | np.ndarray:
    """ceil(prompt_tokens / block_tokens): how many hash ids a prompt has."""
    return -(-prompt_tokens // block_tokens)


def token_ids_from_hash_ids(
    hash_ids: Sequence[int],
    prompt_tokens: int,
    block_tokens: int,
    vocab_size: int,
    low_id: int = 100,
) -> list[int]:
    """prompt_tokens token ids whose sharing follows hash_ids, block by block.

    Block j's tokens depend only on (its id, j): drawn from blake2b in counter mode, in
    [low_id, vocab_size - low_id) (clear of the ids tokenizers keep for special tokens at
    either end; give the ordinary vocabulary's size). Rows with equal leading ids get
    equal leading tokens, a partial last block is a prefix of the full block it would be,
    and unequal ids give different tokens (but for a chance of vocab^-block_tokens).
    """
    if len(hash_ids) != num_blocks(prompt_tokens, block_tokens):
        raise ValueError(
            f"{len(hash_ids)} hash ids for {prompt_tokens} tokens in blocks of {block_tokens}"
        )
    out: list[int] = []
    for j, h in enumerate(hash_ids):
        n = min(block_tokens, prompt_tokens - j * block_tokens)
        key = int(h).to_bytes(8, "little", signed=True) + j.to_bytes(8, "little")
        out.extend(draw_token_ids(key, n, vocab_size, low_id))
    return out


def draw_token_ids(key: bytes, n: int, vocab_size: int, low_id: int = 100) -> list[int]:
    """n token ids in [low_id, vocab_size - low_id) fixed by `key`, on every machine.

    blake2b in counter mode; the first m ids for a key are the same whatever n >= m.
    """
    span = vocab_size - 2 * low_id
    if span < 1:
        raise ValueError(f"vocab_size {vocab_size} leaves no ids outside low_id {low_id}")
    raw = b"".join(
        hashlib.blake2b(key + c.to_bytes(4, "little"), digest_size=64).digest()
        for c in range(-(-n // _TOKENS_PER_DIGEST))
    )
    draws = np.frombuffer(raw, dtype="<u4")[:n].astype(np.int64)
    return (low_id + draws % span).tolist()


def reused_prefix_tokens(
    hash_ids: Sequence[Sequence[int]],
    prompt_tokens: np.ndarray,
    block_tokens: int,
    carried_blocks: np.ndarray | None = None,
) -> np.ndarray:
    """Per request, the prompt tokens in leading blocks that an earlier row already had.

    A block counts when the same ids (and, for a partial block, the same length) led up
    to it in an earlier row: what an infinite prefix cache could hit, at most. A row's
    first carried_blocks[i] blocks count too (a session turn's earlier conversation,
    output included, which the trace's earlier rows do not spell out).
    """
    prompt_tokens = np.asarray(prompt_tokens, dtype=np.int64)
    counts = np.fromiter((len(h) for h in hash_ids), dtype=np.int64, count=len(hash_ids))
    if counts.sum() == 0:
        return np.zeros(len(counts), dtype=np.int64)
    ids = np.concatenate([np.asarray(h, dtype=np.int64) for h in hash_ids if len(h)])
    row = np.repeat(np.arange(len(counts)), counts)
    start = np.cumsum(counts) - counts
    pos = np.arange(len(ids)) - np.repeat(start, counts)
    length = np.minimum(block_tokens, prompt_tokens[row] - pos * block_tokens)
    path = np.empty(len(ids), dtype=np.int64)  # a dense id of (path to parent, id, length)
    seen = np.zeros(len(ids), dtype=bool)
    order = np.lexsort((row, pos))  # position by position, rows in order within each
    bounds = np.searchsorted(pos[order], np.arange(pos.max() + 2))
    for j in range(pos.max() + 1):
        at = order[bounds[j] : bounds[j + 1]]
        parent = path[at - 1] if j else np.zeros(len(at), dtype=np.int64)
        keys = np.stack([parent, ids[at], length[at]], axis=1)
        _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        path[at] = inverse.reshape(-1)
        seen[at] = np.arange(len(at)) != first[inverse.reshape(-1)]
    if carried_blocks is not None:
        seen |= pos < np.asarray(carried_blocks, dtype=np.int64)[row]
    return np.bincount(row, weights=np.where(seen, length, 0), minlength=len(counts)).astype(
        np.int64
    )
