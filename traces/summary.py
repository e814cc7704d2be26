"""What `trace show` reports: size, timing and length distribution of a trace file."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from traces.contract import previous_turn_rows
from traces.errors import TraceError
from traces.prefix import reused_prefix_tokens
from traces.schema import HASH_BLOCK_TOKENS_KEY


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
    hash_block_tokens: int | None = None  # when the trace has hash_ids
    # share of prompt tokens in leading blocks an earlier request (or, for a session turn,
    # the conversation before it) already had: the prefix hit rate of an infinite cache
    prefix_reuse_share: float | None = None
    sessions: dict = field(default_factory=dict)  # count, turns per session (mean, max)
    stages: list = field(default_factory=list)  # per stage: rate, duration_s, requests, ...

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
        hash_block_tokens=meta.get(HASH_BLOCK_TOKENS_KEY) if "hash_ids" in df.columns else None,
        prefix_reuse_share=_prefix_reuse_share(df, meta),
        sessions=_sessions(df),
        stages=_stages(df, meta),
    )


def _carried_blocks(df: pd.DataFrame, block: int) -> np.ndarray | None:
    """Per row, the blocks of a turn's earlier conversation (prompt and output of turn k-1)."""
    if "session_id" not in df.columns:
        return None
    prev, _ = previous_turn_rows(df["session_id"].to_numpy(dtype=np.int64))
    before = df["prompt_tokens"].to_numpy() + df["output_tokens"].to_numpy()
    return np.where(prev >= 0, before[np.maximum(prev, 0)] // block, 0)


def _prefix_reuse_share(df: pd.DataFrame, meta: dict) -> float | None:
    if "hash_ids" not in df.columns:
        return None
    block = meta[HASH_BLOCK_TOKENS_KEY]
    prompt = df["prompt_tokens"].to_numpy(dtype=np.int64)
    reused = reused_prefix_tokens(
        df["hash_ids"].tolist(), prompt, block, _carried_blocks(df, block)
    )
    return float(reused.sum() / prompt.sum())


def _sessions(df: pd.DataFrame) -> dict:
    if "session_id" not in df.columns:
        return {}
    turns = df["session_id"].value_counts().to_numpy()
    return {"count": len(turns), "turns_mean": float(turns.mean()), "turns_max": int(turns.max())}


def _stages(df: pd.DataFrame, meta: dict) -> list:
    """The stages of the trace's metadata, with the requests each has in the trace."""
    stages = meta.get("arrival", {}).get("stages", [])
    if "stage" not in df.columns:
        return list(stages)
    counts = np.bincount(df["stage"].to_numpy(dtype=np.int64), minlength=len(stages))
    return [{**s, "in_trace": int(c)} for s, c in zip(stages, counts, strict=False)]


def _category_shares(df: pd.DataFrame) -> dict:
    """Share of requests per category, largest first (ties by name), if there is a column."""
    if "category" not in df.columns:
        return {}
    shares = df["category"].value_counts(normalize=True)
    order = sorted(shares.items(), key=lambda kv: (-kv[1], str(kv[0])))
    return {str(k): float(v) for k, v in order}
