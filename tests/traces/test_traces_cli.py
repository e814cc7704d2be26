"""`ltrsched trace build|show` end to end, and every bad input as a one-line error, exit 2."""

from __future__ import annotations

import json

import pytest

from traces.io import read_trace


def records(n: int) -> list[dict]:
    return [
        {
            "id": f"id{i}",
            "conversations": [
                {"from": "human", "value": f"question {i}"},
                {"from": "gpt", "value": "answer " * (i + 1)},
            ],
        }
        for i in range(n)
    ]


def one_error_line(result, *fragments: str) -> str:
    """Assert exit 2 with one `error: ...` line on stderr holding every fragment."""
    assert result.rc == 2, (result.rc, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture
def good_sharegpt(sharegpt_file):
    return sharegpt_file(records(30))


def test_build_then_show(run_cli, good_sharegpt, tmp_path):
    out = tmp_path / "t.parquet"
    r = run_cli("build", "--path", good_sharegpt, "-n", 20, "--rate", 4, "--seed", 1, "-o", out)
    assert r.rc == 0, r.err
    assert "wrote" in r.out and "20 requests" in r.out
    df, meta = read_trace(out)
    assert len(df) == 20 and meta["arrival"] == {"process": "poisson", "rate": 4.0}
    shown = run_cli("show", out, "--json")
    assert shown.rc == 0
    summary = json.loads(shown.out)  # JSON only on stdout
    assert summary["count"] == 20 and summary["tokenizer"] == "cl100k_base"
    assert set(summary["output_tokens"]) == {"mean", "p50", "p90", "p99", "max"}
    human = run_cli("show", out)
    assert human.rc == 0 and "requests" in human.out and "p99" in human.out


def test_same_seed_same_bytes_through_the_cli(run_cli, good_sharegpt, tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    for out in (a, b):
        r = run_cli("build", "--path", good_sharegpt, "--rate", 2, "--cv", 3, "-o", out)
        assert r.rc == 0, r.err
    assert a.read_bytes() == b.read_bytes()


def test_truncated_sharegpt_warns_once_and_records_it(run_cli, good_sharegpt, tmp_path):
    text = good_sharegpt.read_text()
    cut = tmp_path / "cut.json"
    cut.write_text(text[: text.index("id20") + 2])
    out = tmp_path / "t.parquet"
    r = run_cli("build", "--path", cut, "--burst", "-o", out)
    assert r.rc == 0, r.err
    warnings = [line for line in r.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "truncated" in warnings[0] and "read 20 whole" in warnings[0]
    _, meta = read_trace(out)
    assert meta["truncated"] is True and meta["rows_read"] == 20


@pytest.mark.parametrize("source", ["sharegpt", "lmsys", "burstgpt", "vllm-timed"])
def test_missing_and_empty_files(run_cli, tmp_path, source):
    out = tmp_path / "t.parquet"
    missing = tmp_path / "nope.json"
    one_error_line(
        run_cli("build", "-s", source, "--path", missing, "--burst", "-o", out),
        str(missing),
        "no such file",
    )
    empty = tmp_path / "empty.json"
    empty.write_text("")
    one_error_line(
        run_cli("build", "-s", source, "--path", empty, "--burst", "-o", out),
        str(empty),
        "file is empty",
    )
    assert not out.exists()


@pytest.mark.parametrize(
    ("source", "content", "message"),
    [
        ("sharegpt", "Timestamp,Model\n1,GPT-4\n", "not a JSON array"),
        ("sharegpt", '{"id": "x", "conversations": []}', "not a JSON array"),
        ("sharegpt", '[{"id": "x"} {"id": "y"}]', "record 1: expected ','"),
        ("lmsys", '[{"conversation": []}]\n', "line 1: not a JSON Lines file"),
        ("lmsys", "PAR1 but not really parquet", "unreadable Parquet"),
        ("vllm-timed", "timestamp,input_length\n1,2\n", "not a JSON Lines file"),
        ("burstgpt", '[{"Timestamp": 1}]', "not a BurstGPT CSV"),
        ("burstgpt", "a,b\n1,2\n", "missing column(s) 'Timestamp'"),
    ],
)
def test_wrong_formats(run_cli, tmp_path, source, content, message):
    path = tmp_path / "input.dat"
    path.write_text(content)
    result = run_cli("build", "-s", source, "--path", path, "--burst", "-o", tmp_path / "t.pq")
    one_error_line(result, str(path), message)


def test_record_without_fields_is_counted_or_strict_error(run_cli, sharegpt_file, tmp_path):
    recs = records(5)
    recs[3] = {"id": "broken", "turns": []}
    path = sharegpt_file(recs)
    out = tmp_path / "t.parquet"
    assert run_cli("build", "--path", path, "--burst", "-o", out).rc == 0
    assert read_trace(out)[1]["rows_dropped"] == {"malformed": 1}
    strict = run_cli("build", "--path", path, "--burst", "--strict", "-o", out)
    one_error_line(strict, str(path), "record 3", "--strict")


def test_strict_timed_trace_names_the_line(run_cli, jsonl_file, tmp_path):
    path = jsonl_file([{"timestamp": 0, "input_length": 1, "output_length": 2}, {"timestamp": 1}])
    r = run_cli("build", "-s", "vllm-timed", "--path", path, "--strict", "-o", tmp_path / "t.pq")
    one_error_line(r, "line 2", "missing input_length, output_length")


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ((1, "GPT-4", -5, 10), "Request tokens"),
        ((1, "GPT-4", 5, "lots"), "Response tokens"),
        ((1, "GPT-4", 5.5, 10), "Request tokens"),
        (("yesterday", "GPT-4", 5, 10), "Timestamp"),
        ((-1, "GPT-4", 5, 10), "Timestamp"),
    ],
)
def test_burstgpt_bad_values_name_the_line(run_cli, burstgpt_file, tmp_path, row, column):
    path = burstgpt_file([(0, "GPT-4", 1, 1), (0.5, "GPT-4", 2, 2), row])
    r = run_cli("build", "-s", "burstgpt", "--path", path, "-o", tmp_path / "t.parquet")
    one_error_line(r, str(path), "line 4", repr(column))


@pytest.mark.parametrize(
    ("key", "value"),
    [("input_length", -1), ("output_length", "12"), ("timestamp", None), ("timestamp", -3)],
)
def test_timed_trace_bad_values_name_the_line(run_cli, jsonl_file, tmp_path, key, value):
    good = {"timestamp": 0, "input_length": 1, "output_length": 2}
    path = jsonl_file([good, {**good, key: value}])
    r = run_cli("build", "-s", "vllm-timed", "--path", path, "-o", tmp_path / "t.parquet")
    one_error_line(r, str(path), "line 2", repr(key))


def test_unsorted_timestamps_are_sorted_with_a_warning(run_cli, burstgpt_file, tmp_path):
    path = burstgpt_file([(10, "GPT-4", 1, 1), (5, "GPT-4", 2, 2), (20, "GPT-4", 3, 3)])
    out = tmp_path / "t.parquet"
    r = run_cli("build", "-s", "burstgpt", "--path", path, "-o", out)
    assert r.rc == 0 and "warning:" in r.err and "not sorted" in r.err
    df, _ = read_trace(out)
    assert df["arrival_s"].tolist() == [0.0, 5.0, 15.0]
    assert df["prompt_tokens"].tolist() == [2, 1, 3]


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--rate", "0"], "--rate"),
        (["--rate", "-2"], "--rate"),
        (["--rate", "nan"], "--rate"),
        (["--rate", "1", "--cv", "0"], "--cv"),
        (["--rate", "1", "-n", "0"], "-n"),
        (["--rate", "1", "-n", "-4"], "-n"),
        (["--rate", "1", "--duration", "0"], "--duration"),
        (["--rate", "1", "--limit", "0"], "--limit"),
        (["--rate", "1", "--offset", "-1"], "--offset"),
        (["--rate", "1", "--max-prompt-tokens", "0"], "--max-prompt-tokens"),
        (["--rate", "1", "--seed", "-1"], "--seed"),
        (["--time-scale", "0"], "--time-scale"),
        (["--time-scale", "-1"], "--time-scale"),
    ],
)
def test_nonpositive_numbers_name_the_flag(run_cli, burstgpt_file, tmp_path, args, flag):
    path = burstgpt_file([(0, "GPT-4", 1, 1)])
    r = run_cli("build", "-s", "burstgpt", "--path", path, *args, "-o", tmp_path / "t.pq")
    line = one_error_line(r, flag)
    assert line.startswith(f"error: {flag} must be")


def test_non_numeric_flag_is_a_usage_error(run_cli, tmp_path):
    r = run_cli("build", "--rate", "abc", "-o", tmp_path / "t.pq")
    assert r.rc == 2 and "--rate" in r.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--source sharegpt has no timestamps: give --rate"),
        (["--burst", "--rate", "2"], "--burst and --rate exclude each other"),
        (["--cv", "2"], "--cv needs --rate"),
        (["--rate", "2", "--time-scale", "2"], "--time-scale scales a source's own timestamps"),
        (["--rate", "2", "-s", "parquet"], "--source: unknown source 'parquet'"),
        (["--rate", "2", "--tokenizer", "bert"], "--tokenizer: unknown tokenizer 'bert'"),
        (["--rate", "2", "--model", "GPT-4"], "--model does not apply to --source sharegpt"),
        (
            ["-s", "synthetic", "--rate", "2", "-n", "5", "--prompt-dist", "fixed:1"],
            "--output-dist",
        ),
        (["-s", "synthetic", "--rate", "2"], "--source synthetic needs -n"),
        (["--rate", "2", "-s", "synthetic", "--path", "x.json"], "reads no file"),
        (["--rate", "2", "-s", "lmsys"], "--source lmsys needs --path FILE"),
    ],
)
def test_option_mistakes(run_cli, tmp_path, args, message):
    one_error_line(run_cli("build", *args, "-o", tmp_path / "t.pq"), message)


def test_nothing_left_after_filters(run_cli, good_sharegpt, tmp_path):
    r = run_cli(
        "build",
        "--path",
        good_sharegpt,
        "--burst",
        "--max-output-tokens",
        "1",
        "--max-prompt-tokens",
        "1",
        "-o",
        tmp_path / "t.pq",
    )
    one_error_line(r, "no usable records", "30 read", "prompt_too_long 30")


def test_output_is_a_directory(run_cli, good_sharegpt, tmp_path):
    r = run_cli("build", "--path", good_sharegpt, "--burst", "-o", tmp_path)
    one_error_line(r, "--output", "is a directory")


def test_show_bad_files(run_cli, tmp_path):
    one_error_line(run_cli("show", tmp_path / "none.parquet"), "no such file")
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    one_error_line(run_cli("show", junk), "not a Parquet trace")


def test_build_summary_line_counts_dropped_records_and_says_request(run_cli, jsonl_file, tmp_path):
    good = {"timestamp": 0, "input_length": 5, "output_length": 2}
    path = jsonl_file([good, "{not json", "[1, 2]"])
    out = tmp_path / "vt.parquet"
    r = run_cli("build", "-s", "vllm-timed", "--path", path, "-o", out)
    assert r.rc == 0, r.err
    line = r.out.strip().splitlines()[-1]
    assert line.startswith(f"wrote {out}: 1 request over 0.0 s")
    assert line.endswith("; 2 of 3 records dropped (malformed 2)"), line
    clean = run_cli("build", "-s", "vllm-timed", "--path", jsonl_file([good, good]), "-o", out)
    assert ": 2 requests over" in clean.out and "dropped" not in clean.out
