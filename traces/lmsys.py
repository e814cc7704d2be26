"""LMSYS-Chat-1M loader: records with `conversation` = [{role, content}, ...].

Reads the Hugging Face Parquet shards or a JSON Lines dump (detected by the Parquet
magic bytes, not the file name). Record ids are `conversation_id` when present.
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
    path = check_input_file(where)
    stats = LoadStats(where, where)
    collect = ExchangeCollector("lmsys", stats, opts.strict)
    rows = _parquet_rows(path, where, reporter) if _is_parquet(path) else None
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


def _parquet_rows(path: Path, where: str, reporter: Reporter) -> Iterator[dict]:
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise TraceError(f"{where}: unreadable Parquet file ({str(e).splitlines()[0]})") from None
    names = pf.schema_arrow.names
    if "conversation" not in names:
        raise TraceError(f"{where}: not an LMSYS-Chat-1M file (no 'conversation' column)")
    columns = [c for c in _COLUMNS if c in names]
    return _iter_batches(pf, columns, reporter)


def _iter_batches(pf: pq.ParquetFile, columns: list[str], reporter: Reporter) -> Iterator[dict]:
    with reporter.task("reading LMSYS", pf.metadata.num_rows, "rows") as advance:
        for batch in pf.iter_batches(batch_size=4096, columns=columns):
            yield from batch.to_pylist()
            advance(batch.num_rows)
