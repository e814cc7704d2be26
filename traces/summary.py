"""What `trace show` reports: size, timing and length distribution of a trace file."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from traces.errors import TraceError


@dataclass(frozen=True)
class LengthStats:
    """Distribution of a token-count column."""

    mean: float
    p50: float
    p90: float
    p99: float
    max: int

    @classmethod
    def of(cls, values: np.ndarray) -> LengthStats:
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        return cls(float(values.mean()), float(p50), float(p90), float(p99), int(values.max()))


@dataclass(frozen=True)
class TraceSummary:
    """A trace's summary; `mean_rate_per_s` is (count - 1) / span, None for a burst."""

    count: int
    span_s: float
    mean_rate_per_s: float | None
    interarrival_cv: float | None
    prompt_tokens: LengthStats
    output_tokens: LengthStats
    source: str | None
    path: str | None
    tokenizer: str | None
    arrival: dict = field(default_factory=dict)
    rows_read: int | None = None
    rows_dropped: dict = field(default_factory=dict)
    truncated: bool | None = None
    synthetic: bool = False  # generated (synthetic, lmsys-like), not recorded traffic
    categories: dict = field(default_factory=dict)  # category -> share, when the trace has them

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(df: pd.DataFrame, meta: dict, where: str = "trace") -> TraceSummary:
    """Summarize a trace as read by traces.io.read_trace."""
    if len(df) == 0:
        raise TraceError(f"{where}: the trace has no requests")
    arrival = df["arrival_s"].to_numpy(dtype=np.float64)
    span = float(arrival[-1] - arrival[0]) if len(arrival) else 0.0
    gaps = np.diff(arrival)
    cv = float(gaps.std() / gaps.mean()) if len(gaps) > 1 and gaps.mean() > 0 else None
    return TraceSummary(
        count=len(df),
        span_s=span,
        mean_rate_per_s=(len(df) - 1) / span if span > 0 else None,
        interarrival_cv=cv,
        prompt_tokens=LengthStats.of(df["prompt_tokens"].to_numpy()),
        output_tokens=LengthStats.of(df["output_tokens"].to_numpy()),
        source=meta.get("source"),
        path=meta.get("path"),
        tokenizer=meta.get("tokenizer"),
        arrival=meta.get("arrival", {}),
        rows_read=meta.get("rows_read"),
        rows_dropped=meta.get("rows_dropped", {}),
        truncated=meta.get("truncated"),
        synthetic=bool(meta.get("synthetic")) or meta.get("source") == "synthetic",
        categories=_category_shares(df),
    )


def _category_shares(df: pd.DataFrame) -> dict:
    """Share of requests per category, largest first (ties by name), if there is a column."""
    if "category" not in df.columns:
        return {}
    shares = df["category"].value_counts(normalize=True)
    order = sorted(shares.items(), key=lambda kv: (-kv[1], str(kv[0])))
    return {str(k): float(v) for k, v in order}
