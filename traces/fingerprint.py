"""A trace's fingerprint: a short hash of what an engine replays (each request's id,
arrival, prompt and output length), written into every run's summary.json by the
simulator and by live replay, so that `ltrsched compare` can tell runs of different
traces apart whatever the files were called."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

# The summary.json key both engines write it under.
FINGERPRINT_KEY = "trace_fingerprint"


def trace_fingerprint(df: pd.DataFrame) -> str:
    """sha256 (first 16 hex digits) of the four columns, rows in (arrival_s, request_id)
    order, arrivals rounded to the microsecond: the same requests give the same print
    however the rows are ordered or the extra columns differ."""
    d = df.sort_values(["arrival_s", "request_id"], kind="stable")
    h = hashlib.sha256()
    h.update(np.int64(len(d)).tobytes())
    h.update(d["request_id"].to_numpy(np.int64).tobytes())
    h.update(np.round(d["arrival_s"].to_numpy(np.float64) * 1e6).astype(np.int64).tobytes())
    h.update(d["prompt_tokens"].to_numpy(np.int64).tobytes())
    h.update(d["output_tokens"].to_numpy(np.int64).tobytes())
    return h.hexdigest()[:16]
