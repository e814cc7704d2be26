"""Timed-trace loader: JSON Lines with an arrival time and token counts per request.

This is the Mooncake trace format that vLLM's and AIPerf's benchmarks replay:
{"timestamp": 27482, "input_length": 6955, "output_length": 52, "hash_ids": [...]},
timestamp in milliseconds (--timestamp-unit s for traces that use seconds).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from traces.errors import TraceError
from traces.inputs import check_input_file, require_path
from traces.jsonl import BadLine, JsonlStream
from traces.progress import Reporter
from traces.records import (
    EMPTY_PROMPT,
    EMPTY_RESPONSE,
    MALFORMED,
    LoadStats,
    SourceOptions,
    SourceRecords,
)

TIMESTAMP = "timestamp"
INPUT_LENGTH = "input_length"
OUTPUT_LENGTH = "output_length"
_FIELDS = (TIMESTAMP, INPUT_LENGTH, OUTPUT_LENGTH)
UNIT_SECONDS = {"ms": 1e-3, "s": 1.0}


def load_vllm_timed(opts: SourceOptions, reporter: Reporter) -> SourceRecords:
    """Records in --offset/--limit with their timestamps (s) and token counts."""
    where = require_path(opts.path, "vllm-timed")
    if opts.timestamp_unit not in UNIT_SECONDS:
        known = ", ".join(UNIT_SECONDS)
        raise TraceError(f"--timestamp-unit must be one of {known}, got {opts.timestamp_unit!r}")
    path = check_input_file(where)
    stats = LoadStats(where, where, details={"timestamp_unit": opts.timestamp_unit})
    ids: list[str] = []
    rows: list[tuple[float, float, float]] = []
    with path.open("rb") as f, reporter.task("reading trace", path.stat().st_size, "bytes") as adv:
        stream = JsonlStream(f, where, on_bytes=adv)
        for index, line_no, record in stream:
            if opts.past_range(index):
                break
            if not opts.in_range(index):
                continue
            stats.rows_read += 1
            missing = _missing(record)
            if missing:
                if opts.strict:
                    raise TraceError(f"{where}: line {line_no}: {missing} (--strict)")
                stats.drop(MALFORMED)
                continue
            rows.append(tuple(_number(record, k, where, line_no) for k in _FIELDS))
            ids.append(str(index))
    if stream.truncated:
        stats.truncated = True
        stats.warnings.append(
            f"{where} is truncated: its last line is cut off; read {stats.rows_read:,} records"
        )
    table = np.array(rows, dtype=np.float64).reshape(-1, 3)
    ts, prompt, output = table[:, 0], table[:, 1], table[:, 2]
    keep = np.ones(len(ids), dtype=bool)
    for reason, empty in ((EMPTY_PROMPT, prompt == 0), (EMPTY_RESPONSE, output == 0)):
        stats.drop(reason, int((keep & empty).sum()))
        keep &= ~empty
    return SourceRecords(
        source="vllm-timed",
        record_id=[i for i, k in zip(ids, keep, strict=True) if k],
        stats=stats,
        prompt_tokens=prompt[keep].astype(np.int64),
        output_tokens=output[keep].astype(np.int64),
        timestamp_s=ts[keep] * UNIT_SECONDS[opts.timestamp_unit],
    )


def _missing(record: Any) -> str:
    if isinstance(record, BadLine):
        return record.reason
    absent = [k for k in _FIELDS if k not in record]
    return f"missing {', '.join(absent)}" if absent else ""


def _number(record: dict, key: str, where: str, line_no: int) -> float:
    """record[key] as a float >= 0 (a whole number for lengths), else a TraceError."""
    value = record[key]
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and value >= 0
    if ok and key != TIMESTAMP:
        ok = float(value).is_integer()
    if not ok:
        kind = "a number" if key == TIMESTAMP else "a whole number"
        raise TraceError(f"{where}: line {line_no}: {key!r} must be {kind} >= 0, got {value!r}")
    return float(value)
