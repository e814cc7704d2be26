"""BurstGPT loader: its CSV of Azure OpenAI requests, with timestamps and token counts.

Columns: Timestamp (s), Model, Request tokens, Response tokens, Total tokens, Log Type.
There is no text, so the counts are the source's own (ChatGPT/GPT-4 tokenizers).
Rows with 0 response tokens are failed requests and are dropped as empty responses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from traces.errors import TraceError
from traces.inputs import check_input_file, require_path
from traces.progress import Reporter
from traces.records import (
    EMPTY_PROMPT,
    EMPTY_RESPONSE,
    OTHER_MODEL,
    LoadStats,
    SourceOptions,
    SourceRecords,
)

TIMESTAMP = "Timestamp"
MODEL = "Model"
REQUEST_TOKENS = "Request tokens"
RESPONSE_TOKENS = "Response tokens"
_REQUIRED = (TIMESTAMP, REQUEST_TOKENS, RESPONSE_TOKENS)


def load_burstgpt(opts: SourceOptions, reporter: Reporter) -> SourceRecords:
    """Rows in --offset/--limit with their timestamps and token counts."""
    where = require_path(opts.path, "burstgpt")
    path = check_input_file(where)
    with reporter.task("reading BurstGPT", None):
        df = _read_csv(path, where, opts)
    stats = LoadStats(where, where, rows_read=len(df))
    first_line = opts.offset + 2  # line 1 is the header
    ts = _numbers(df, TIMESTAMP, where, first_line, whole=False)
    prompt = _numbers(df, REQUEST_TOKENS, where, first_line, whole=True)
    output = _numbers(df, RESPONSE_TOKENS, where, first_line, whole=True)
    keep = np.ones(len(df), dtype=bool)
    if opts.model is not None:
        if MODEL not in df.columns:
            raise TraceError(f"{where}: --model needs a {MODEL!r} column")
        other = (df[MODEL].astype(str) != opts.model).to_numpy()
        stats.drop(OTHER_MODEL, int(other.sum()))
        keep &= ~other
    for reason, empty in ((EMPTY_PROMPT, prompt == 0), (EMPTY_RESPONSE, output == 0)):
        stats.drop(reason, int((keep & empty).sum()))
        keep &= ~empty
    index = np.arange(opts.offset, opts.offset + len(df))[keep]
    return SourceRecords(
        source="burstgpt",
        record_id=[str(i) for i in index],
        stats=stats,
        prompt_tokens=prompt[keep].astype(np.int64),
        output_tokens=output[keep].astype(np.int64),
        timestamp_s=ts[keep],
    )


def _read_csv(path: Path, where: str, opts: SourceOptions) -> pd.DataFrame:
    skip = range(1, opts.offset + 1) if opts.offset else None
    try:
        df = pd.read_csv(path, skiprows=skip, nrows=opts.limit, dtype=str, keep_default_na=False)
    except UnicodeDecodeError:
        raise TraceError(f"{where}: not a CSV text file (not UTF-8)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise TraceError(f"{where}: not a BurstGPT CSV ({str(e).splitlines()[0]})") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in _REQUIRED if c not in df.columns]
    if missing:
        raise TraceError(
            f"{where}: not a BurstGPT CSV: missing column(s) {', '.join(map(repr, missing))}"
        )
    return df


def _numbers(df: pd.DataFrame, column: str, where: str, first_line: int, whole: bool) -> np.ndarray:
    """The column as float64, or a TraceError naming the first bad line."""
    raw = df[column].str.strip()
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values < 0)
    if whole:
        bad |= np.isfinite(values) & (values != np.floor(values))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        kind = "a whole number" if whole else "a number"
        raise TraceError(
            f"{where}: line {first_line + row}: {column!r} must be {kind} >= 0, "
            f"got {raw.iloc[row]!r}"
        )
    return values
