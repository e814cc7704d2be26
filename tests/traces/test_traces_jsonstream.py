"""The streaming JSON array reader: same records as json.loads, and a cut file's whole records."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from traces.errors import TraceError
from traces.jsonstream import JsonArrayStream

records = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.text(max_size=5),
            "n": st.integers(-(10**12), 10**12),
            "x": st.floats(allow_nan=False, allow_infinity=False),
            "s": st.text(max_size=40),
        }
    ),
    max_size=8,
)


def read(data: bytes, chunk: int = 1 << 22) -> tuple[list, JsonArrayStream]:
    stream = JsonArrayStream(io.BytesIO(data), "f.json", chunk_bytes=chunk)
    return list(stream), stream


@settings(max_examples=60, deadline=None)
@given(records, st.integers(1, 64), st.sampled_from([None, 1]))
def test_reads_what_json_loads_reads_at_any_chunk_size(recs, chunk, indent):
    data = json.dumps(recs, indent=indent, ensure_ascii=False).encode()
    got, stream = read(data, chunk)
    assert got == json.loads(data)
    assert not stream.truncated


@settings(max_examples=60, deadline=None)
@given(records.filter(bool), st.integers(1, 64), st.data())
def test_a_cut_file_gives_exactly_the_records_that_end_before_the_cut(recs, chunk, data):
    parts = [json.dumps(r, ensure_ascii=False).encode() for r in recs]
    full, ends = b"[\n", []
    for i, part in enumerate(parts):
        full += (b",\n" if i else b"") + part
        ends.append(len(full))
    full += b"\n]"
    cut = data.draw(st.integers(2, len(full) - 1))  # keep the '[', lose the ']'
    got, stream = read(full[:cut], chunk)
    assert stream.truncated
    assert got == recs[: sum(end <= cut for end in ends)]


def test_cut_inside_a_multibyte_character_is_a_cut_not_an_encoding_error():
    full = json.dumps([{"s": "a"}, {"s": "é€😀"}], ensure_ascii=False).encode()
    cut = full.index("€".encode()) + 1
    got, stream = read(full[:cut], chunk=3)
    assert got == [{"s": "a"}] and stream.truncated


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"   ", "file is empty"),
        (b'{"a": 1}', "not a JSON array"),
        (b"Timestamp,Model\n1,GPT-4\n", "not a JSON array"),
        (b'[{"a": 1} {"b": 2}]', "record 1: expected ',' or ']'"),
        (b'[{"a": 1}, {"b": nope, "c": "' + b"x" * 100 + b'"}]', "record 1: invalid JSON"),
        (b'[{"a": 1}] [', "extra data"),
        (b'[{"a": "\xff\xfe' + b"x" * 100 + b'"}]', "not UTF-8"),
    ],
)
def test_bad_files_raise_one_line_trace_errors(data, message):
    with pytest.raises(TraceError, match=message) as e:
        read(data, chunk=8)
    assert "\n" not in str(e.value)


def test_trailing_comma_and_empty_array_are_accepted():
    assert read(b'[{"a": 1},]')[0] == [{"a": 1}]
    got, stream = read(b"[ ]")
    assert got == [] and not stream.truncated
