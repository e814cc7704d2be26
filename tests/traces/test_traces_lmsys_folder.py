"""--source lmsys on a folder of Parquet shards laid out like the Hugging Face copy."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from traces.build import build_trace
from traces.config import BuildConfig
from traces.errors import TraceError
from traces.lmsys import load_lmsys
from traces.progress import Reporter
from traces.records import SourceOptions

QUIET = Reporter()

# The dataset card's features (conversation_id, model, conversation, turn, language,
# openai_moderation, redacted), with the moderation struct cut down to two fields.
SCHEMA = pa.schema(
    [
        ("conversation_id", pa.string()),
        ("model", pa.string()),
        (
            "conversation",
            pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())])),
        ),
        ("turn", pa.int64()),
        ("language", pa.string()),
        (
            "openai_moderation",
            pa.list_(
                pa.struct(
                    [("flagged", pa.bool_()), ("categories", pa.struct([("hate", pa.bool_())]))]
                )
            ),
        ),
        ("redacted", pa.bool_()),
    ]
)


def row(cid: str, model: str = "vicuna-13b", turns: int = 1) -> dict:
    conversation = []
    for t in range(turns):
        conversation += [
            {"content": f"question {cid}.{t}", "role": "user"},
            {"content": f"answer {cid}.{t}", "role": "assistant"},
        ]
    moderation = [{"flagged": False, "categories": {"hate": False}}] * len(conversation)
    return {
        "conversation_id": cid,
        "model": model,
        "conversation": conversation,
        "turn": turns,
        "language": "English",
        "openai_moderation": moderation,
        "redacted": False,
    }


def write_shard(path: Path, rows: list[dict]) -> None:
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), path)


@pytest.fixture
def shards(tmp_path: Path) -> Path:
    """data/ with three shards, written out of name order; 7 conversations in all."""
    data = tmp_path / "data"
    data.mkdir()
    write_shard(data / "train-00002-of-00003.parquet", [row("g"), row("h", "koala-13b")])
    write_shard(data / "train-00000-of-00003.parquet", [row("a", turns=2), row("b"), row("c")])
    write_shard(data / "train-00001-of-00003.parquet", [row("d", "koala-13b"), row("e")])
    (data / "README.md").write_text("not a shard")
    return data


def test_a_folder_is_one_sequence_of_records_in_name_order(shards):
    recs = load_lmsys(SourceOptions(path=str(shards)), QUIET)
    assert recs.record_id == ["a", "b", "c", "d", "e", "g", "h"]
    assert recs.prompt[0] == "question a.0" and recs.response[0] == "answer a.0"
    assert recs.stats.rows_read == 7
    assert recs.stats.details == {"format": "parquet", "shards": 3}


def test_offset_limit_and_model_span_shards(shards):
    recs = load_lmsys(SourceOptions(path=str(shards), offset=2, limit=4), QUIET)
    assert recs.record_id == ["c", "d", "e", "g"]
    recs = load_lmsys(SourceOptions(path=str(shards), model="koala-13b"), QUIET)
    assert recs.record_id == ["d", "h"] and recs.stats.dropped == {"other_model": 5}


def test_build_from_a_folder(shards):
    res = build_trace(BuildConfig(source="lmsys", path=str(shards), burst=True))
    assert res.df["record_id"].tolist() == ["a", "b", "c", "d", "e", "g", "h"]
    assert res.meta["path"] == str(shards) and res.meta["shards"] == 3


def test_folder_mistakes_name_the_folder_or_shard(tmp_path, shards):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TraceError, match="no \\*.parquet files in this folder"):
        load_lmsys(SourceOptions(path=str(empty)), QUIET)
    pq.write_table(pa.table({"x": [1]}), shards / "train-00003-of-00003.parquet")
    with pytest.raises(TraceError, match="train-00003-of-00003.parquet: not an LMSYS-Chat-1M"):
        load_lmsys(SourceOptions(path=str(shards)), QUIET)
    (shards / "train-00003-of-00003.parquet").write_bytes(b"")
    with pytest.raises(TraceError, match="file is empty"):
        load_lmsys(SourceOptions(path=str(shards)), QUIET)
