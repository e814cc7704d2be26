"""LMSYS-Chat-1M loader: records with `conversation` = [{role, content}, ...].

Reads one Parquet file, a folder of Parquet shards (the Hugging Face copy's data/
folder: its *.parquet files in name order, numbered as one sequence of records), or a
JSON Lines dump (detected by the Parquet magic bytes, not the file name). The shards'
other columns (turn, language, openai_moderation, redacted) are not read. Record ids
are `conversation_id` when present.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from traces.errors import TraceError
from traces.inputs import check_input_file, require_path
from traces.jsonl import BadLine, JsonlStream
from traces.progress import Reporter
from traces.records import OTHER_MODEL, LoadStats, SourceOptions, SourceRecords
from traces.turns import ExchangeCollector

_COLUMNS = ("conversation_id", "conversation", "model")


def load_lmsys(opts: SourceOptions, reporter: Reporter) -> SourceRecords:
    """First exchanges of the records in --offset/--limit, with read and drop counts."""
    where = require_path(opts.path, "lmsys")
    stats = LoadStats(where, where)
    collect = ExchangeCollector("lmsys", stats, opts.strict, opts.turns, opts.max_turns)
    if Path(where).is_dir():
        shards = _shards(where)
        stats.details.update(format="parquet", shards=len(shards))
        rows = _parquet_rows(shards, reporter)
        _collect(((i, f"row {i}", r) for i, r in enumerate(rows)), opts, collect)
        return collect.records()
    path = check_input_file(where)
    rows = _parquet_rows([(path, where)], reporter) if _is_parquet(path) else None
    stats.details["format"] = "jsonl" if rows is None else "parquet"
    truncated = False
    if rows is None:
        size = path.stat().st_size
        with path.open("rb") as f, reporter.task("reading LMSYS", size, "bytes") as advance:
            stream = JsonlStream(f, where, on_bytes=advance)
            _collect(((i, f"line {n}", r) for i, n, r in stream), opts, collect)
            truncated = stream.truncated
    else:
        _collect(((i, f"row {i}", r) for i, r in enumerate(rows)), opts, collect)
    if truncated:
        stats.truncated = True
        stats.warnings.append(
            f"{where} is truncated: its last line is cut off; read {stats.rows_read:,} records"
        )
    return collect.records()


def _collect(
    rows: Iterator[tuple[int, str, Any]], opts: SourceOptions, collect: ExchangeCollector
) -> None:
    stats = collect.stats
    for index, label, record in rows:
        if opts.past_range(index):
            break
        if not opts.in_range(index):
            continue
        stats.rows_read += 1
        if isinstance(record, BadLine):
            collect.malformed(label, record.reason)
        elif "conversation" not in record:
            collect.malformed(label, "no 'conversation' field")
        elif opts.model is not None and record.get("model") != opts.model:
            stats.drop(OTHER_MODEL)
        else:
            record_id = str(record.get("conversation_id") or index)
            collect.add(label, record_id, record["conversation"], "role", "content")


def _is_parquet(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"PAR1"


def _shards(folder: str) -> list[tuple[Path, str]]:
    """(path, name for messages) of each *.parquet file in `folder`, in name order."""
    paths = sorted(p for p in Path(folder).glob("*.parquet") if p.is_file())
    if not paths:
        raise TraceError(
            f"{folder}: no *.parquet files in this folder "
            "(for the Hugging Face copy of LMSYS-Chat-1M, give its data/ folder)"
        )
    return [(check_input_file(p), str(p)) for p in paths]


def _open_shard(path: Path, where: str) -> pq.ParquetFile:
    """The Parquet file, checked to be LMSYS-shaped; errors name it."""
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise TraceError(f"{where}: unreadable Parquet file ({str(e).splitlines()[0]})") from None
    if "conversation" not in pf.schema_arrow.names:
        raise TraceError(f"{where}: not an LMSYS-Chat-1M file (no 'conversation' column)")
    return pf


def _parquet_rows(shards: list[tuple[Path, str]], reporter: Reporter) -> Iterator[dict]:
    """Every shard opened and checked up front, then their rows one after another."""
    files = [_open_shard(path, where) for path, where in shards]
    return _iter_batches(files, reporter)


def _iter_batches(files: list[pq.ParquetFile], reporter: Reporter) -> Iterator[dict]:
    total = sum(pf.metadata.num_rows for pf in files)
    with reporter.task("reading LMSYS", total, "rows") as advance:
        for pf in files:
            columns = [c for c in _COLUMNS if c in pf.schema_arrow.names]
            for batch in pf.iter_batches(batch_size=4096, columns=columns):
                yield from batch.to_pylist()
                advance(batch.num_rows)
