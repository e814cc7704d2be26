"""hash_ids: computed for text sources, kept from Mooncake-style traces, checked on read."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_traces_cli import one_error_line

from traces.build import build_trace
from traces.config import BuildConfig
from traces.errors import TraceError
from traces.io import read_trace, write_trace
from traces.prefix import hash_ids_from_token_ids
from traces.progress import Reporter
from traces.records import SourceOptions
from traces.tokenize import get_tokenizer
from traces.vllm_timed import load_vllm_timed

SYSTEM = "You are a helpful assistant. Answer briefly and precisely, in plain English. " * 3


def conversation(i: int, prompt: str) -> dict:
    turns = [{"from": "human", "value": prompt}, {"from": "gpt", "value": f"answer {i}"}]
    return {"id": f"r{i}", "conversations": turns}


@pytest.fixture
def corpus(sharegpt_file):
    """Six prompts; 0, 2 and 4 open with the same long instruction."""
    prompts = [SYSTEM + "What is 2+2?", "hi", SYSTEM + "Name a colour.", "hello there"]
    prompts += [SYSTEM + "What is 2+2?", "   "]
    return str(sharegpt_file([conversation(i, p) for i, p in enumerate(prompts)]))


def test_text_sources_hash_the_tokenizers_ids_in_blocks_of_16(corpus):
    res = build_trace(BuildConfig(path=corpus, burst=True))
    df, meta = res.df, res.meta
    assert meta["hash_block_tokens"] == 16
    ids = get_tokenizer("cl100k").encode_batch(df["prompt"].tolist())
    for row, token_ids in zip(df.itertuples(), ids, strict=True):
        assert row.prompt_tokens == len(token_ids)
        assert list(row.hash_ids) == hash_ids_from_token_ids(token_ids, 16)
    full = len(get_tokenizer("cl100k").encode_batch([SYSTEM])[0]) // 16
    h = df["hash_ids"]
    assert list(h[0][:full]) == list(h[2][:full]) and h[0][full] != h[2][full]
    assert list(h[0]) == list(h[4]) and len(h) == 5  # the same prompt again; 5 is blank


def test_hash_block_tokens_and_no_hash_ids(corpus, tmp_path):
    res = build_trace(BuildConfig(path=corpus, burst=True, hash_block_tokens=32))
    assert res.meta["hash_block_tokens"] == 32
    assert (res.df["hash_ids"].map(len) == -(-res.df["prompt_tokens"] // 32)).all()
    plain = build_trace(BuildConfig(path=corpus, burst=True, hash_ids=False))
    assert "hash_ids" not in plain.df.columns and "hash_block_tokens" not in plain.meta
    pd.testing.assert_frame_equal(res.df.drop(columns="hash_ids"), plain.df)


def test_same_options_same_bytes_with_hash_ids(corpus, tmp_path):
    paths = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    for path in paths:
        res = build_trace(BuildConfig(path=corpus, rate=2.0, seed=3))
        write_trace(res.df, path, res.meta)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    table = pq.read_table(paths[0])
    assert table.schema.field("hash_ids").type == pa.list_(pa.int64())
    df, _ = read_trace(paths[0])
    assert list(df["hash_ids"][0]) == list(res.df["hash_ids"][0])


def test_lmsys_like_has_hash_ids_too():
    res = build_trace(BuildConfig(source="lmsys-like", num_requests=20, burst=True))
    assert res.meta["hash_block_tokens"] == 16
    assert (res.df["hash_ids"].map(len) == -(-res.df["prompt_tokens"] // 16)).all()


# --- the contract, checked when a trace is written or read ---


def small_trace(hash_ids: list, prompt_tokens: list[int]) -> pd.DataFrame:
    n = len(prompt_tokens)
    return pd.DataFrame(
        {
            "request_id": np.arange(10, 10 + n),
            "arrival_s": np.zeros(n),
            "prompt_tokens": prompt_tokens,
            "output_tokens": np.ones(n, dtype=np.int64),
            "hash_ids": pd.Series(hash_ids, dtype=object),
        }
    )


def test_write_and_read_check_the_count_per_row(tmp_path):
    path = tmp_path / "t.parquet"
    good = small_trace([[1, 2], [1]], [20, 16])
    write_trace(good, path, {"hash_block_tokens": 16})
    df, meta = read_trace(path)
    assert [list(h) for h in df["hash_ids"]] == [[1, 2], [1]]
    bad = small_trace([[1, 2], [1, 2]], [20, 16])
    with pytest.raises(TraceError, match=r"row 1 \(request_id 11\): hash_ids has 2 ids, expected"):
        write_trace(bad, path, {"hash_block_tokens": 16})


@pytest.mark.parametrize(
    ("meta", "cells", "message"),
    [
        ({}, [[1]], "hash_ids needs the metadata key hash_block_tokens"),
        ({"hash_block_tokens": 0}, [[1]], "hash_block_tokens must be an int >= 1"),
        ({"hash_block_tokens": True}, [[1]], "hash_block_tokens must be an int >= 1"),
        ({"hash_block_tokens": 16}, [[1.5]], r"row 0 \(request_id 10\): hash_ids must be a list"),
        ({"hash_block_tokens": 16}, [None], r"row 0 \(request_id 10\): hash_ids must be a list"),
        ({"hash_block_tokens": 16}, ["12"], "hash_ids must be a list of int64"),
    ],
)
def test_bad_hash_ids_are_one_line_errors(tmp_path, meta, cells, message):
    with pytest.raises(TraceError, match=message):
        write_trace(small_trace(cells, [5]), tmp_path / "t.parquet", meta)


def test_a_file_with_other_list_types_or_no_block_fails_on_read(tmp_path):
    path = tmp_path / "t.parquet"
    table = pa.table(
        {
            "request_id": [0],
            "arrival_s": [0.0],
            "prompt_tokens": [5],
            "output_tokens": [1],
            "hash_ids": pa.array([[1.0]], type=pa.list_(pa.float64())),
        }
    )
    pq.write_table(table, path)
    with pytest.raises(TraceError, match=r"t.parquet: hash_ids must be list<int64>, not list<"):
        read_trace(path)
    pq.write_table(table.set_column(4, "hash_ids", pa.array([[1]], pa.list_(pa.int64()))), path)
    with pytest.raises(TraceError, match="t.parquet: hash_ids needs the metadata key"):
        read_trace(path)


# --- Mooncake / Kimi timed traces ---

QUIET = Reporter()


def mooncake(ts: int, n: int, out: int, hash_ids) -> dict:
    row = {"timestamp": ts, "input_length": n, "output_length": out}
    if hash_ids is not None:
        row["hash_ids"] = hash_ids
    return row


def test_vllm_timed_keeps_hash_ids_in_blocks_of_512(jsonl_file):
    rows = [mooncake(0, 1000, 5, [1, 2]), mooncake(10, 512, 5, [1]), mooncake(20, 513, 5, [3, 4])]
    recs = load_vllm_timed(SourceOptions(path=str(jsonl_file(rows))), QUIET)
    assert recs.hash_block_tokens == 512
    assert [h.tolist() for h in recs.hash_ids] == [[1, 2], [1], [3, 4]]
    small = [mooncake(0, 20, 5, [1, 2]), mooncake(10, 16, 5, [1])]
    recs = load_vllm_timed(SourceOptions(path=str(jsonl_file(small)), hash_block_tokens=16), QUIET)
    assert recs.hash_block_tokens == 16 and [h.tolist() for h in recs.hash_ids] == [[1, 2], [1]]
    plain = load_vllm_timed(SourceOptions(path=str(jsonl_file(rows)), hash_ids=False), QUIET)
    assert plain.hash_ids is None and plain.hash_block_tokens is None


def test_vllm_timed_trace_round_trips_through_the_cli(run_cli, jsonl_file, tmp_path):
    rows = [mooncake(0, 1000, 5, [7, 8]), mooncake(5, 600, 3, [7, 9])]
    out = tmp_path / "t.parquet"
    r = run_cli("build", "-s", "vllm-timed", "--path", jsonl_file(rows), "-o", out)
    assert r.rc == 0, r.err
    df, meta = read_trace(out)
    assert meta["hash_block_tokens"] == 512
    assert [list(h) for h in df["hash_ids"]] == [[7, 8], [7, 9]]
    shown = run_cli("show", out)
    assert "hash block" in shown.out and "512 tokens" in shown.out
    assert "32.0%" in shown.out  # 512 of 1,600 prompt tokens: row 1's first block
    summary = json.loads(run_cli("show", out, "--json").out)
    assert summary["hash_block_tokens"] == 512 and summary["prefix_reuse_share"] == 0.32


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ([1, 2, 3], "'hash_ids' has 3 ids, expected ceil(1000/512) = 2"),
        ([1], "'hash_ids' has 1 ids, expected ceil(1000/512) = 2"),
        ("1,2", "'hash_ids' must be a list of int64"),
        ([1, True], "'hash_ids' must be a list of int64"),
        ([1, 2.0], "'hash_ids' must be a list of int64"),
        ([1, 2**63], "'hash_ids' must be a list of int64"),
    ],
)
def test_bad_hash_ids_lines_are_malformed_or_strict_errors(run_cli, jsonl_file, tmp_path, bad, why):
    rows = [mooncake(0, 1000, 5, [1, 2]), mooncake(1, 1000, 5, bad), mooncake(2, 10, 5, [4])]
    path = jsonl_file(rows)
    recs = load_vllm_timed(SourceOptions(path=str(path)), QUIET)
    assert recs.record_id == ["0", "2"] and recs.stats.dropped == {"malformed": 1}
    r = run_cli("build", "-s", "vllm-timed", "--path", path, "--strict", "-o", tmp_path / "t.pq")
    one_error_line(r, str(path), "line 2", why, "--strict")


def test_lines_without_hash_ids_among_others_are_dropped(run_cli, jsonl_file, tmp_path):
    rows = [mooncake(0, 1000, 5, [1, 2]), mooncake(1, 10, 5, None), mooncake(2, 10, 5, [4])]
    path = jsonl_file(rows)
    out = tmp_path / "t.parquet"
    r = run_cli("build", "-s", "vllm-timed", "--path", path, "-o", out)
    assert r.rc == 0, r.err
    assert "warning:" in r.err and "1 lines have no 'hash_ids'" in r.err and "line 2" in r.err
    df, meta = read_trace(out)
    assert df["record_id"].tolist() == ["0", "2"] and meta["rows_dropped"] == {"malformed": 1}
    strict = run_cli("build", "-s", "vllm-timed", "--path", path, "--strict", "-o", out)
    one_error_line(strict, "line 2", "no 'hash_ids'")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hash-block-tokens", "0"], "--hash-block-tokens must be >= 1"),
        (["--hash-block-tokens", "8", "--no-hash-ids"], "exclude each other"),
        (
            ["-s", "burstgpt", "--hash-block-tokens", "8"],
            "--source burstgpt has no prefix identity",
        ),
        (["-s", "synthetic", "--no-hash-ids"], "--no-hash-ids: --source synthetic has no prefix"),
    ],
)
def test_hash_flag_mistakes(run_cli, tmp_path, args, message):
    one_error_line(run_cli("build", "--burst", *args, "-o", tmp_path / "t.pq"), message)
