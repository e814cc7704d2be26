"""Prefix identity: chained block hash ids, token ids back from them, reuse with a cache."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from traces.prefix import (
    BlockHasher,
    hash_ids_from_token_ids,
    num_blocks,
    reused_prefix_tokens,
    token_ids_from_hash_ids,
)


def shared_blocks(a: list[int], b: list[int]) -> int:
    """How many leading ids two rows have in common."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def test_prompts_sharing_40_of_50_tokens_share_exactly_two_blocks_of_16():
    a = list(range(1000, 1050))
    b = a[:40] + list(range(5000, 5010))
    ha, hb = hash_ids_from_token_ids(a, 16), hash_ids_from_token_ids(b, 16)
    assert len(ha) == len(hb) == 4  # ceil(50 / 16): the last block holds 2 tokens
    assert shared_blocks(ha, hb) == 2  # tokens 0..31 agree; block 2 (32..47) differs at 40


def test_ids_are_chained_a_block_after_different_predecessors_differs():
    block = list(range(16))
    x = hash_ids_from_token_ids([7] * 16 + block, 16)
    y = hash_ids_from_token_ids([8] * 16 + block, 16)
    assert x[0] != y[0] and x[1] != y[1]
    # the same block at the start is yet another id
    assert hash_ids_from_token_ids(block, 16)[0] not in (x[1], y[1])


def test_a_partial_last_block_differs_from_the_full_one_and_by_length():
    full = hash_ids_from_token_ids(list(range(16)), 16)
    assert hash_ids_from_token_ids(list(range(10)), 16) != full
    assert hash_ids_from_token_ids(list(range(10)), 16) != hash_ids_from_token_ids(
        list(range(11)), 16
    )


def test_stable_known_values_are_pinned():
    # blake2b(8-byte id 0 | ids as <i8, digest 8) read as a signed little-endian int64
    assert hash_ids_from_token_ids([1, 2, 3], 16) == [-1488495063901212959]
    assert hash_ids_from_token_ids(list(range(20)), 16) == [
        -3027613264856255669,
        -7247894374580442440,
    ]
    digest = hashlib.blake2b(
        (0).to_bytes(8, "little") + np.array([1, 2, 3], "<i8").tobytes(), digest_size=8
    ).digest()
    assert int.from_bytes(digest, "little", signed=True) == -1488495063901212959
    assert token_ids_from_hash_ids([123], 5, 16, 32000) == [20412, 11638, 12055, 16353, 8299]


def test_incremental_hasher_equals_hashing_the_whole_stream():
    stream = list(range(100, 180))
    hasher = BlockHasher(16)
    for cut in (5, 20, 21, 40, 80):
        hasher.extend(stream[hasher.num_tokens : cut])
        assert hasher.hash_ids() == hash_ids_from_token_ids(stream[:cut], 16)
    fork = hasher.copy().extend([1, 2])
    assert hasher.hash_ids() == hash_ids_from_token_ids(stream, 16)
    assert fork.hash_ids() == hash_ids_from_token_ids(stream + [1, 2], 16)


def test_token_ids_have_the_length_range_and_sharing_of_the_ids():
    ha = [11, 22, 33]
    hb = [11, 22, 44]
    a = token_ids_from_hash_ids(ha, 40, 16, vocab_size=1000, low_id=100)
    b = token_ids_from_hash_ids(hb, 40, 16, vocab_size=1000, low_id=100)
    assert len(a) == len(b) == 40
    assert min(a + b) >= 100 and max(a + b) < 900
    assert a[:32] == b[:32] and a[32:] != b[32:]
    # a partial block is a prefix of the full block of the same id
    full = token_ids_from_hash_ids(ha, 48, 16, vocab_size=1000)
    assert full[:40] == a
    with pytest.raises(ValueError, match="3 hash ids for 50 tokens"):
        token_ids_from_hash_ids(ha, 50, 16, vocab_size=1000)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    prefix=st.lists(st.integers(0, 50_000), max_size=70),
    tails=st.lists(
        st.lists(st.integers(0, 50_000), min_size=1, max_size=40), min_size=2, max_size=4
    ),
    block=st.sampled_from([1, 4, 16, 32]),
)
def test_round_trip_keeps_the_sharing_structure(prefix, tails, block):
    rows = [prefix + tail for tail in tails]
    hashed = [hash_ids_from_token_ids(r, block) for r in rows]
    tokens = [
        token_ids_from_hash_ids(h, len(r), block, 32_000) for h, r in zip(hashed, rows, strict=True)
    ]
    again = [hash_ids_from_token_ids(t, block) for t in tokens]
    for i in range(len(rows)):
        assert len(tokens[i]) == len(rows[i]) and len(hashed[i]) == num_blocks(len(rows[i]), block)
        for j in range(len(rows)):
            assert shared_blocks(again[i], again[j]) == shared_blocks(hashed[i], hashed[j])


def test_reuse_counts_leading_blocks_an_earlier_row_had():
    a = hash_ids_from_token_ids(list(range(50)), 16)  # blocks 16, 16, 16, 2
    b = hash_ids_from_token_ids(list(range(40)) + [9] * 10, 16)  # shares 2 blocks with a
    reused = reused_prefix_tokens([a, b, a, b[:3]], np.array([50, 50, 50, 48]), 16)
    assert reused.tolist() == [0, 32, 50, 48]


def test_reuse_needs_equal_predecessors_and_length_for_unchained_ids():
    # Mooncake-style ids that are not chained: a shared id after different ones is no hit
    rows = [[1, 2, 3], [9, 2, 3], [1, 2, 5], [1, 2, 3]]
    reused = reused_prefix_tokens(rows, np.array([30, 30, 30, 25]), 10)
    # row 3's last block has 5 tokens, row 0's has 10: same id, not the same content
    assert reused.tolist() == [0, 0, 20, 20]


def test_carried_blocks_count_as_reused():
    rows = [[1, 2], [1, 2, 3, 4]]
    reused = reused_prefix_tokens(rows, np.array([20, 40]), 10, carried_blocks=np.array([0, 3]))
    assert reused.tolist() == [0, 30]
    assert reused_prefix_tokens([[], []], np.array([0, 0]), 10).tolist() == [0, 0]
