"""Checks of the optional columns' contract (traces/schema.py): hash_ids, sessions, stage.

Each failure is one TraceError naming the file and the row (and its request_id).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from traces.errors import TraceError, shown
from traces.prefix import num_blocks
from traces.schema import HASH_BLOCK_TOKENS_KEY, SESSION_COLUMNS


def check_optional_columns(df: pd.DataFrame, meta: dict[str, Any], where: str) -> None:
    """Raise TraceError when hash_ids, the session columns or stage break the contract."""
    block = check_hash_ids(df, meta, where) if "hash_ids" in df.columns else None
    present = [c for c in SESSION_COLUMNS if c in df.columns]
    if present and len(present) < len(SESSION_COLUMNS):
        missing = ", ".join(c for c in SESSION_COLUMNS if c not in present)
        raise TraceError(f"{where}: session columns come together: missing {missing}")
    if present:
        check_sessions(df, block, where)
    if "stage" in df.columns:
        stage = _integers(df, "stage", where)
        _fail_first(df, stage < 0, where, lambda r: f"stage must be >= 0, got {stage[r]}")


def check_hash_ids(df: pd.DataFrame, meta: dict[str, Any], where: str) -> int:
    """len(hash_ids) == ceil(prompt_tokens / block) on every row; returns the block."""
    block = meta.get(HASH_BLOCK_TOKENS_KEY)
    if block is None:
        raise TraceError(f"{where}: hash_ids needs the metadata key {HASH_BLOCK_TOKENS_KEY}")
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise TraceError(f"{where}: {HASH_BLOCK_TOKENS_KEY} must be an int >= 1, got {block!r}")
    cells = df["hash_ids"]
    lengths = np.fromiter((_length(c) for c in cells), dtype=np.int64, count=len(cells))
    _fail_first(df, lengths < 0, where, lambda r: "hash_ids must be a list of int64")
    prompt = df["prompt_tokens"].to_numpy(dtype=np.int64)
    want = num_blocks(prompt, block)
    _fail_first(
        df,
        lengths != want,
        where,
        lambda r: (
            f"hash_ids has {lengths[r]} ids, expected ceil({prompt[r]}/{block}) = "
            f"{want[r]} ({HASH_BLOCK_TOKENS_KEY} {block})"
        ),
    )
    return block


def check_sessions(df: pd.DataFrame, block: int | None, where: str) -> None:
    """Turns 0..n-1 in row order; each turn's prompt holds the conversation before it."""
    session = _integers(df, "session_id", where)
    turn = _integers(df, "turn", where)
    think = pd.to_numeric(df["think_s"], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(think) | (think < 0)
    _fail_first(df, bad, where, lambda r: f"think_s must be a number >= 0, got {shown(think[r])}")
    prev, position = previous_turn_rows(session)
    _fail_first(
        df,
        turn != position,
        where,
        lambda r: (
            f"session {session[r]}: turn {turn[r]} where turn {position[r]} comes "
            "(a session's turns are 0, 1, ... in row order)"
        ),
    )
    _fail_first(
        df, (turn == 0) & (think != 0), where, lambda r: f"turn 0 has think_s {think[r]}, not 0"
    )
    _check_turn_prefixes(df, prev, block, where)


def previous_turn_rows(session_id: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the row of its session's previous turn (-1 for the first), and its
    position in its session (0, 1, ... in row order)."""
    order = np.argsort(session_id, kind="stable")  # each session's rows, in row order
    grouped = session_id[order]
    new = np.r_[True, grouped[1:] != grouped[:-1]] if len(order) else np.zeros(0, dtype=bool)
    starts = np.flatnonzero(new)
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    prev = np.full(len(order), -1, dtype=np.int64)
    prev[order[~new]] = order[np.flatnonzero(~new) - 1]
    return prev, position


def _check_turn_prefixes(df: pd.DataFrame, prev: np.ndarray, block: int | None, where: str):
    prompt = df["prompt_tokens"].to_numpy(dtype=np.int64)
    output = df["output_tokens"].to_numpy(dtype=np.int64)
    later = prev >= 0
    before = np.zeros(len(df), dtype=np.int64)
    before[later] = prompt[prev[later]] + output[prev[later]]
    _fail_first(
        df,
        later & (prompt < before),
        where,
        lambda r: (
            f"prompt_tokens {prompt[r]} < {before[r]}, the previous turn's prompt and "
            "output (a turn's prompt is the conversation so far)"
        ),
    )
    if block is None:
        return
    cells = df["hash_ids"].to_numpy()
    for r in np.flatnonzero(later):
        p = int(prev[r])
        n = int(prompt[p] // block)
        if not np.array_equal(np.asarray(cells[r][:n]), np.asarray(cells[p][:n])):
            _fail_row(
                df,
                int(r),
                where,
                f"hash_ids do not start with the previous turn's {n} complete prompt blocks "
                "(a turn's prompt is the conversation so far)",
            )


def _length(cell: Any) -> int:
    """len(cell) for a list or int array of ids, -1 for anything else."""
    if isinstance(cell, np.ndarray):
        return len(cell) if cell.ndim == 1 and cell.dtype.kind in "iu" else -1
    if isinstance(cell, (list, tuple)):
        ok = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in cell)
        return len(cell) if ok else -1
    return -1


def _integers(df: pd.DataFrame, column: str, where: str) -> np.ndarray:
    values = df[column]
    if not pd.api.types.is_integer_dtype(values.dtype):
        numbers = pd.to_numeric(values, errors="coerce")
        bad = numbers.isna() | (numbers != numbers.round())
        _fail_first(df, bad.to_numpy(), where, lambda r: f"{column} must be an integer")
    return values.to_numpy(dtype=np.int64)


def _fail_first(df: pd.DataFrame, bad: np.ndarray, where: str, why) -> None:
    """Raise for the first row where `bad`, naming it and its request_id."""
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        _fail_row(df, row, where, why(row))


def _fail_row(df: pd.DataFrame, row: int, where: str, why: str) -> None:
    raise TraceError(f"{where}: row {row} (request_id {df['request_id'].iloc[row]}): {why}")
