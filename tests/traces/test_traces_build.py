"""The build pipeline: filters and their counts, selection, arrivals, metadata, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from traces.build import build_trace
from traces.config import BuildConfig
from traces.errors import TraceError
from traces.io import read_trace, write_trace


def conversation(i: int, prompt: str, response: str) -> dict:
    turns = [{"from": "human", "value": prompt}, {"from": "gpt", "value": response}]
    return {"id": f"r{i}", "conversations": turns}


def words(word: str, k: int) -> str:
    """k cl100k tokens: "word word ... word"."""
    return " ".join([word] * k)


@pytest.fixture
def corpus(sharegpt_file):
    """40 records: prompt i has i+1 words, response 2*(i+1); record 5 has a blank prompt."""
    recs = [conversation(i, words("word", i + 1), words("reply", 2 * (i + 1))) for i in range(40)]
    recs[5] = conversation(5, "   ", "something")
    return str(sharegpt_file(recs))


def build(**kw):
    return build_trace(BuildConfig(**kw))


def test_filters_drop_and_count_by_reason(corpus):
    res = build(path=corpus, burst=True, max_prompt_tokens=30, max_output_tokens=50)
    df, meta = res.df, res.meta
    assert df["prompt_tokens"].max() <= 30 and df["output_tokens"].max() <= 50
    # record i: i+1 prompt tokens (> 30 for i >= 30), 2(i+1) output (> 50 for i >= 25)
    assert meta["rows_dropped"] == {"empty_prompt": 1, "output_too_long": 5, "prompt_too_long": 10}
    assert meta["rows_read"] == 40 and meta["rows_eligible"] == 24 == len(df)
    assert list(df["request_id"]) == list(range(24))
    assert df["record_id"].iloc[:6].tolist() == ["r0", "r1", "r2", "r3", "r4", "r6"]
    assert (df["arrival_s"] == 0).all() and meta["arrival"] == {"process": "burst"}
    assert meta["tokenizer"] == "cl100k_base" and meta["source"] == "sharegpt"


def test_n_takes_the_first_survivors_or_a_seeded_shuffle(corpus):
    first = build(path=corpus, rate=1.0, num_requests=5).df
    assert first["record_id"].tolist() == ["r0", "r1", "r2", "r3", "r4"]
    shuffled = build(path=corpus, rate=1.0, num_requests=5, shuffle=True, seed=3).df
    assert shuffled["record_id"].tolist() != first["record_id"].tolist()
    again = build(path=corpus, rate=1.0, num_requests=5, shuffle=True, seed=3).df
    assert shuffled["record_id"].tolist() == again["record_id"].tolist()
    # the arrival stream does not depend on the selection stream
    np.testing.assert_array_equal(
        first["arrival_s"],
        build(path=corpus, rate=1.0, num_requests=5, seed=0, shuffle=True).df["arrival_s"],
    )


def test_too_few_requests_for_n(corpus):
    with pytest.raises(TraceError, match=r"-n 100: only 39 requests remain after filtering"):
        build(path=corpus, rate=1.0, num_requests=100)


def test_disjoint_offset_ranges_give_disjoint_traces(corpus):
    train = build(path=corpus, rate=1.0, offset=0, limit=20).df
    test = build(path=corpus, rate=1.0, offset=20, limit=20).df
    assert not set(train["record_id"]) & set(test["record_id"])
    assert len(train) + len(test) == 39


def test_duration_keeps_arrivals_before_it(corpus):
    res = build(path=corpus, rate=2.0, num_requests=30, duration_s=5.0, seed=1)
    assert (res.df["arrival_s"] < 5.0).all()
    assert res.meta["rows_dropped"]["after_duration"] == 30 - len(res.df)
    assert res.meta["arrival"] == {"process": "poisson", "rate": 2.0, "duration_s": 5.0}


def test_source_timestamps_are_shifted_scaled_and_sorted(jsonl_file):
    rows = [
        {"timestamp": t, "input_length": 10 + i, "output_length": 5}
        for i, t in enumerate([1000, 3000, 2000, 5000])
    ]
    res = build(source="vllm-timed", path=str(jsonl_file(rows)), time_scale=2.0)
    np.testing.assert_allclose(res.df["arrival_s"], [0.0, 2.0, 4.0, 8.0])
    assert res.df["prompt_tokens"].tolist() == [10, 12, 11, 13]
    assert res.df["record_id"].tolist() == ["0", "2", "1", "3"]
    (warning,) = res.warnings
    assert "not sorted" in warning and "sorted them" in warning
    assert res.meta["tokenizer"] == "source"
    assert res.meta["arrival"] == {"process": "timestamps", "time_scale": 2.0}
    assert res.meta["timestamp_unit"] == "ms"


def test_same_seed_same_file_bytes(corpus, tmp_path):
    paths = []
    for name, seed in (("a", 4), ("b", 4), ("c", 5)):
        res = build(path=corpus, rate=3.0, cv=2.0, seed=seed, num_requests=20, shuffle=True)
        paths.append(tmp_path / f"{name}.parquet")
        write_trace(res.df, paths[-1], res.meta)
    a, b, c = (p.read_bytes() for p in paths)
    assert a == b and a != c


def test_written_trace_reads_back_with_its_metadata(corpus, tmp_path):
    res = build(path=corpus, rate=3.0, seed=2, num_requests=10, keep_text=False)
    write_trace(res.df, tmp_path / "t.parquet", res.meta)
    df, meta = read_trace(tmp_path / "t.parquet")
    assert "prompt" not in df.columns and len(df) == 10
    assert meta["seed"] == 2 and meta["num_requests"] == 10 and meta["truncated"] is False
    assert "created_at" not in meta


def test_synthetic_trace(tmp_path):
    res = build(
        source="synthetic",
        num_requests=50,
        rate=5.0,
        prompt_dist="lognormal:mu=4,sigma=1",
        output_dist="fixed:7",
        seed=9,
    )
    assert len(res.df) == 50 and (res.df["output_tokens"] == 7).all()
    assert res.meta["prompt_dist"] == "lognormal:mu=4,sigma=1"
    assert res.meta["tokenizer"] == "none (drawn lengths)"
