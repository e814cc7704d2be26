"""Reading and writing trace files (Parquet with ltrsched metadata)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from traces.contract import check_optional_columns
from traces.errors import TraceError, shown
from traces.schema import HASH_BLOCK_TOKENS_KEY, METADATA_KEY, REQUIRED_COLUMNS, SCHEMA_VERSION

_HASH_IDS_TYPE = pa.list_(pa.int64())


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call write(tmp_path), then rename tmp_path onto path; a crash leaves no half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def validate_trace(
    df: pd.DataFrame, where: str = "trace", meta: dict[str, Any] | None = None
) -> None:
    """Raise TraceError naming the column or row when df (with its metadata) breaks the schema."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise TraceError(f"{where}: missing column(s) {', '.join(missing)}")
    for col in ("arrival_s", "prompt_tokens", "output_tokens"):
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() | (values < (0 if col == "arrival_s" else 1))
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise TraceError(
                f"{where}: row {row}: {col} must be a number >= "
                f"{0 if col == 'arrival_s' else 1}, got {shown(df[col].iloc[row])}"
            )
    check_request_ids(df["request_id"], where)
    if df["request_id"].duplicated().any():
        row = int(df["request_id"].duplicated().to_numpy().nonzero()[0][0])
        raise TraceError(f"{where}: row {row}: duplicate request_id {df['request_id'].iloc[row]}")
    arr = df["arrival_s"].to_numpy()
    if len(arr) > 1 and (arr[1:] < arr[:-1]).any():
        raise TraceError(f"{where}: arrival_s is not sorted")
    check_optional_columns(df, meta or {}, where)


def check_request_ids(ids: pd.Series, where: str) -> None:
    """request_id is int64 in the schema: engines, fingerprints and joins of run tables
    key on it; whole floats pass, text and fractions name the first bad row."""
    if pd.api.types.is_integer_dtype(ids) and not pd.api.types.is_bool_dtype(ids):
        return
    if pd.api.types.is_float_dtype(ids):
        values = ids.to_numpy(np.float64)
        bad = ~np.isfinite(values) | (values != np.round(values))
    else:
        bad = np.ones(len(ids), dtype=bool)
    if bad.any():
        row = int(bad.nonzero()[0][0])
        raise TraceError(
            f"{where}: row {row}: column request_id must hold integers (int64), "
            f"got {shown(ids.iloc[row])}"
        )


def write_trace(df: pd.DataFrame, path: str | os.PathLike, meta: dict[str, Any]) -> None:
    """Validate and write df with meta as Parquet, atomically (hash_ids as list<int64>)."""
    validate_trace(df, str(path), meta)
    meta = {"schema_version": SCHEMA_VERSION, **meta}
    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    if "hash_ids" in table.column_names:
        i = table.column_names.index("hash_ids")
        table = table.set_column(i, "hash_ids", table.column(i).cast(_HASH_IDS_TYPE))
    existing = table.schema.metadata or {}
    table = table.replace_schema_metadata({**existing, METADATA_KEY: json.dumps(meta)})
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def read_trace(path: str | os.PathLike) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a trace file; return (DataFrame, metadata). Errors name the file."""
    path = Path(path)
    if not path.exists():
        raise TraceError(f"{path}: no such file")
    if path.is_dir():  # pyarrow would read it as a dataset and name a file inside
        raise TraceError(f"{path}: is a directory, not a trace file")
    if path.stat().st_size == 0:
        raise TraceError(f"{path}: file is empty")
    try:
        with pq.ParquetFile(path) as f:  # one file: no pyarrow.dataset (slow to import)
            table = f.read()
    except (pa.ArrowInvalid, OSError) as e:
        raise TraceError(f"{path}: not a Parquet trace ({str(e).splitlines()[0]})") from None
    if table.num_rows == 0:  # before any column check: an empty column has no type
        raise TraceError(f"{path}: trace has no rows")
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    meta = json.loads(raw) if raw else {}
    if "hash_ids" in table.column_names:
        kind = table.schema.field("hash_ids").type
        if kind not in (_HASH_IDS_TYPE, pa.large_list(pa.int64())):
            raise TraceError(f"{path}: hash_ids must be list<int64>, not {kind}")
    df = table.to_pandas()
    validate_trace(df, str(path), meta)
    if meta.get(HASH_BLOCK_TOKENS_KEY) is not None:
        # Engines read it beside the hash_ids column (sim.run.simulate looks here).
        df.attrs[HASH_BLOCK_TOKENS_KEY] = meta[HASH_BLOCK_TOKENS_KEY]
    return df, meta
