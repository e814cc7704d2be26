"""Timed-trace loader: JSON Lines with an arrival time and token counts per request.

This is the Mooncake trace format that vLLM's and AIPerf's benchmarks replay:
{"timestamp": 27482, "input_length": 6955, "output_length": 52, "hash_ids": [...]},
timestamp in milliseconds (--timestamp-unit s for traces that use seconds).
`hash_ids` (one id per block of 512 prompt tokens in Mooncake's and Kimi's traces;
--hash-block-tokens for others) are kept as they are. A line whose hash_ids is not a list
of int64 or has not ceil(input_length / block) of them is malformed; when some lines
have hash_ids, a line without them is malformed too. A file with none has no column.
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
HASH_IDS = "hash_ids"
UNIT_SECONDS = {"ms": 1e-3, "s": 1.0}
MOONCAKE_BLOCK_TOKENS = 512  # the block of Mooncake's (and Kimi's) public traces
_INT64 = (-(2**63), 2**63 - 1)


def load_vllm_timed(opts: SourceOptions, reporter: Reporter) -> SourceRecords:
    """Records in --offset/--limit with their timestamps (s) and token counts."""
    where = require_path(opts.path, "vllm-timed")
    if opts.timestamp_unit not in UNIT_SECONDS:
        known = ", ".join(UNIT_SECONDS)
        raise TraceError(f"--timestamp-unit must be one of {known}, got {opts.timestamp_unit!r}")
    path = check_input_file(where)
    stats = LoadStats(where, where, details={"timestamp_unit": opts.timestamp_unit})
    block = opts.hash_block_tokens or MOONCAKE_BLOCK_TOKENS
    ids: list[str] = []
    rows: list[tuple[float, float, float]] = []
    hashes: list[np.ndarray | None] = []
    line_of: list[int] = []
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
            row = tuple(_number(record, k, where, line_no) for k in _FIELDS)
            hash_ids = None
            if opts.hash_ids and HASH_IDS in record:
                hash_ids, why = _hash_ids(record[HASH_IDS], int(row[1]), block)
                if why:
                    if opts.strict:
                        raise TraceError(f"{where}: line {line_no}: {why} (--strict)")
                    stats.drop(MALFORMED)
                    continue
            rows.append(row)
            hashes.append(hash_ids)
            line_of.append(line_no)
            ids.append(str(index))
    if stream.truncated:
        stats.truncated = True
        stats.warnings.append(
            f"{where} is truncated: its last line is cut off; read {stats.rows_read:,} records"
        )
    table = np.array(rows, dtype=np.float64).reshape(-1, 3)
    ts, prompt, output = table[:, 0], table[:, 1], table[:, 2]
    keep = np.ones(len(ids), dtype=bool)
    hashed = any(h is not None for h in hashes)
    if hashed:
        keep = _without_hash_ids_dropped(hashes, line_of, where, opts.strict, stats)
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
        hash_ids=[h for h, k in zip(hashes, keep, strict=True) if k] if hashed else None,
        hash_block_tokens=block if hashed else None,
    )


def _hash_ids(value: Any, input_length: int, block: int) -> tuple[np.ndarray | None, str]:
    """The line's hash ids as int64, or None and why they are malformed."""
    ok = isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) and _INT64[0] <= v <= _INT64[1]
        for v in value
    )
    if not ok:
        return None, f"{HASH_IDS!r} must be a list of int64"
    want = -(-input_length // block)
    if len(value) != want:
        return None, (
            f"{HASH_IDS!r} has {len(value)} ids, expected ceil({input_length}/{block}) = {want}"
            " (--hash-block-tokens sets the block)"
        )
    return np.asarray(value, dtype=np.int64), ""


def _without_hash_ids_dropped(
    hashes: list, line_of: list[int], where: str, strict: bool, stats: LoadStats
) -> np.ndarray:
    """Keep mask: when some lines have hash_ids, those without are malformed."""
    keep = np.fromiter((h is not None for h in hashes), dtype=bool, count=len(hashes))
    if not keep.all():
        first = line_of[int(np.flatnonzero(~keep)[0])]
        if strict:
            raise TraceError(f"{where}: line {first}: no {HASH_IDS!r}, which other lines have")
        stats.drop(MALFORMED, int((~keep).sum()))
        stats.warnings.append(
            f"{where}: {int((~keep).sum()):,} lines have no {HASH_IDS!r} while others do "
            f"(first: line {first}); dropped them as malformed"
        )
    return keep


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
