"""The trace pipeline: load -> first exchange -> count tokens -> filter -> select -> arrivals.

--offset/--limit pick records by their position in the source, before any filtering,
so that disjoint ranges give disjoint train and test traces. Filters then drop records
(counted by reason), -n keeps the first n survivors (a seeded random n with --shuffle),
and the arrival process gives them times. Same config and seed, same trace.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from traces.arrivals import arrival_times
from traces.config import BuildConfig
from traces.errors import TraceError
from traces.progress import Reporter
from traces.records import (
    AFTER_DURATION,
    EMPTY_PROMPT,
    EMPTY_RESPONSE,
    OUTPUT_TOO_LONG,
    PROMPT_TOO_LONG,
    LoadStats,
    SourceRecords,
)
from traces.schema import OPTIONAL_COLUMNS
from traces.seeding import rng_for
from traces.tokenize import TokenCounter, get_tokenizer


@dataclass
class BuildResult:
    """The trace, its metadata, and warnings for the user (one line each)."""

    df: pd.DataFrame
    meta: dict
    warnings: list[str]


def build_trace(cfg: BuildConfig, reporter: Reporter | None = None) -> BuildResult:
    """Build the trace that `cfg` describes; TraceError on any user mistake."""
    reporter = reporter or Reporter()
    cfg.validate()
    spec = cfg.spec()
    counter = get_tokenizer(cfg.tokenizer or "cl100k") if spec.has_text else None
    records = spec.load(cfg.source_options(), reporter)
    stats = records.stats
    warnings = list(stats.warnings)
    tokenizer = _count_tokens(records, counter, reporter) if counter else spec.counts_by
    eligible = records.take(np.flatnonzero(_within_limits(records, cfg, stats)))
    if len(eligible) == 0:
        raise TraceError(f"{stats.where}: no usable records ({_read_summary(stats)})")
    chosen = _select(eligible, cfg, stats)
    process = cfg.arrival_process()
    if process.kind == "timestamps":
        chosen = _sort_by_timestamp(chosen, stats, warnings)
    rng = rng_for(cfg.seed, "arrivals")
    arrival_s = arrival_times(process, len(chosen), rng, chosen.timestamp_s)
    if cfg.duration_s is not None:
        chosen, arrival_s = _cut_at_duration(chosen, arrival_s, cfg, stats, warnings)
    df = _frame(chosen, arrival_s, cfg.keep_text)
    meta = _meta(cfg, stats, tokenizer, process.meta(), len(eligible), len(df))
    return BuildResult(df, meta, warnings)


def _count_tokens(records: SourceRecords, counter: TokenCounter, reporter: Reporter) -> str:
    """Fill records' token counts from their text; blank text counts as 0 tokens.

    Output counts come from the response text; a source without one drew them itself.
    """
    texts = records.prompt + (records.response or [])
    counts = counter.count(texts, reporter)
    blank = np.fromiter((not t.strip() for t in texts), dtype=bool, count=len(texts))
    counts[blank] = 0
    n = len(records)
    records.prompt_tokens = counts[:n]
    if records.response is not None:
        records.output_tokens = counts[n:]
    return counter.name


def _within_limits(records: SourceRecords, cfg: BuildConfig, stats: LoadStats) -> np.ndarray:
    """Mask of records that pass the filters; each drop counted under its first reason."""
    prompt, output = records.prompt_tokens, records.output_tokens
    checks = [(EMPTY_PROMPT, prompt == 0), (EMPTY_RESPONSE, output == 0)]
    if cfg.max_prompt_tokens is not None:
        checks.append((PROMPT_TOO_LONG, prompt > cfg.max_prompt_tokens))
    if cfg.max_output_tokens is not None:
        checks.append((OUTPUT_TOO_LONG, output > cfg.max_output_tokens))
    keep = np.ones(len(records), dtype=bool)
    for reason, bad in checks:
        stats.drop(reason, int((keep & bad).sum()))
        keep &= ~bad
    return keep


def _select(eligible: SourceRecords, cfg: BuildConfig, stats: LoadStats) -> SourceRecords:
    """The first -n eligible records, or a seeded random -n of them with --shuffle."""
    order = np.arange(len(eligible))
    if cfg.shuffle:
        order = rng_for(cfg.seed, "selection").permutation(len(eligible))
    if cfg.num_requests is not None:
        if cfg.num_requests > len(eligible):
            raise TraceError(
                f"-n {cfg.num_requests}: only {len(eligible):,} requests remain after filtering "
                f"({_read_summary(stats)})"
            )
        order = order[: cfg.num_requests]
    return eligible.take(order)


def _sort_by_timestamp(
    chosen: SourceRecords, stats: LoadStats, warnings: list[str]
) -> SourceRecords:
    """Records in timestamp order (stable), with a warning if the source's were not."""
    ts = chosen.timestamp_s
    out_of_order = int(np.sum(np.diff(ts) < 0))
    if out_of_order:
        warnings.append(
            f"{stats.where}: timestamps are not sorted ({out_of_order:,} step back); sorted them"
        )
    return chosen.take(np.argsort(ts, kind="stable"))


def _cut_at_duration(
    chosen: SourceRecords,
    arrival_s: np.ndarray,
    cfg: BuildConfig,
    stats: LoadStats,
    warnings: list[str],
) -> tuple[SourceRecords, np.ndarray]:
    """Keep requests arriving before --duration; count the cut when it cuts what was asked."""
    inside = arrival_s < cfg.duration_s
    if cfg.num_requests is not None or cfg.arrival_process().kind == "timestamps":
        stats.drop(AFTER_DURATION, int((~inside).sum()))
    elif inside.all():
        warnings.append(
            f"records ran out at t={arrival_s[-1]:.1f} s, before --duration {cfg.duration_s:g}"
        )
    if not inside.any():
        raise TraceError(f"--duration {cfg.duration_s:g}: no request arrives before it")
    return chosen.take(np.flatnonzero(inside)), arrival_s[inside]


def _read_summary(stats: LoadStats) -> str:
    dropped = ", ".join(f"{k} {v:,}" for k, v in sorted(stats.dropped.items()))
    return f"{stats.rows_read:,} read, dropped: {dropped or 'none'}"


def _frame(chosen: SourceRecords, arrival_s: np.ndarray, keep_text: bool) -> pd.DataFrame:
    n = len(chosen)
    columns = {
        "request_id": np.arange(n, dtype=np.int64),
        "arrival_s": arrival_s.astype(np.float64),
        "prompt_tokens": chosen.prompt_tokens.astype(np.int64),
        "output_tokens": chosen.output_tokens.astype(np.int64),
    }
    if keep_text and chosen.has_text:
        columns["prompt"] = pd.array(chosen.prompt, dtype="string")
        if chosen.response is not None:
            columns["response"] = pd.array(chosen.response, dtype="string")
    columns["source"] = pd.array([chosen.source] * n, dtype="string")
    columns["record_id"] = pd.array(chosen.record_id, dtype="string")
    for name, values in chosen.extra.items():
        columns[name] = pd.array(values, dtype=OPTIONAL_COLUMNS[name])
    return pd.DataFrame(columns)


def _meta(
    cfg: BuildConfig, stats: LoadStats, tokenizer: str, arrival: dict, eligible: int, n: int
) -> dict:
    """The file's metadata; no wall-clock time, so the same seed gives the same bytes."""
    if cfg.duration_s is not None:
        arrival["duration_s"] = cfg.duration_s
    meta = {
        "source": cfg.source,
        "path": stats.path,
        "tokenizer": tokenizer,
        "seed": cfg.seed,
        "arrival": arrival,
        "rows_read": stats.rows_read,
        "rows_dropped": dict(sorted(stats.dropped.items())),
        "rows_eligible": eligible,
        "num_requests": n,
        "truncated": stats.truncated,
        "offset": cfg.offset,
        "limit": cfg.limit,
        "shuffle": cfg.shuffle,
        "max_prompt_tokens": cfg.max_prompt_tokens,
        "max_output_tokens": cfg.max_output_tokens,
    }
    if cfg.model is not None:
        meta["model"] = cfg.model
    meta.update(stats.details)
    return meta
