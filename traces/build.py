"""The trace pipeline: load -> exchanges -> count tokens, hash ids -> filter -> select -> arrivals.

--offset/--limit pick records by their position in the source, before any filtering,
so that disjoint ranges give disjoint train and test traces. Filters then drop records
(counted by reason), -n keeps the first n survivors (a seeded random n with --shuffle),
and the arrival process gives them times. Same config and seed, same trace.

With --turns all a record is one turn of a session (a conversation), and sessions are
what is picked and timed (traces/sessions.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from traces.arrivals import arrival_times
from traces.config import BuildConfig
from traces.errors import TraceError
from traces.progress import Reporter
from traces.prompts import count_prompts
from traces.records import (
    AFTER_DURATION,
    EMPTY_PROMPT,
    EMPTY_RESPONSE,
    OUTPUT_TOO_LONG,
    PROMPT_TOO_LONG,
    LoadStats,
    SourceRecords,
)
from traces.schema import HASH_BLOCK_TOKENS_KEY, OPTIONAL_COLUMNS
from traces.seeding import rng_for
from traces.sessions import (
    cut_sessions,
    num_units,
    sessions_meta,
    take_units,
    turn_arrivals,
    units,
)
from traces.tokenize import get_tokenizer


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
    tokenizer = spec.counts_by
    if counter:
        count_prompts(records, counter, cfg.text_block_tokens(), reporter)
        tokenizer = counter.name
    keep = _within_limits(records, cfg, stats)
    if records.session is not None:
        keep = cut_sessions(records, keep, stats)
    eligible = records.take(np.flatnonzero(keep))
    if len(eligible) == 0:
        raise TraceError(f"{stats.where}: no usable records ({_read_summary(stats)})")
    chosen = _select(eligible, cfg, stats)
    process = cfg.arrival_process()
    if process.kind == "timestamps":
        chosen = _sort_by_timestamp(chosen, stats, warnings)
    rng = rng_for(cfg.seed, "arrivals")
    starts = arrival_times(process, num_units(chosen), rng, chosen.timestamp_s)
    if cfg.duration_s is not None:
        chosen, starts = _cut_at_duration(chosen, starts, cfg, stats, warnings)
    think = cfg.think_time_dist()
    arrival_s, think_s = turn_arrivals(chosen, starts, think, rng_for(cfg.seed, "think"))
    df = _frame(chosen, arrival_s, think_s, process.stage_index(), cfg.keep_text)
    meta = _meta(cfg, stats, tokenizer, process.meta(), len(eligible), len(df))
    if chosen.hash_ids is not None:
        meta[HASH_BLOCK_TOKENS_KEY] = chosen.hash_block_tokens
    if chosen.session is not None:
        meta["sessions"] = sessions_meta(think, cfg.max_turns, num_units(chosen))
    return BuildResult(df, meta, warnings)


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
    """The first -n eligible records (sessions), or a seeded random -n with --shuffle."""
    count = num_units(eligible)
    order = np.arange(count)
    if cfg.shuffle:
        order = rng_for(cfg.seed, "selection").permutation(count)
    wanted = cfg.num_wanted()
    if wanted is not None:
        if wanted > count:
            kind = "sessions" if eligible.session is not None else "requests"
            flag = f"--stages ({wanted:,} {kind})" if cfg.stages is not None else f"-n {wanted}"
            raise TraceError(
                f"{flag}: only {count:,} {kind} remain after filtering ({_read_summary(stats)})"
            )
        order = order[:wanted]
    return take_units(eligible, order)


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
    """Keep requests (sessions) starting before --duration; count the cut when it cuts what
    was asked."""
    inside = arrival_s < cfg.duration_s
    if cfg.num_requests is not None or cfg.arrival_process().kind == "timestamps":
        stats.drop(AFTER_DURATION, int((~inside[units(chosen)]).sum()))
    elif inside.all():
        warnings.append(
            f"records ran out at t={arrival_s[-1]:.1f} s, before --duration {cfg.duration_s:g}"
        )
    if not inside.any():
        raise TraceError(f"--duration {cfg.duration_s:g}: no request arrives before it")
    return take_units(chosen, np.flatnonzero(inside)), arrival_s[inside]


def _read_summary(stats: LoadStats) -> str:
    dropped = ", ".join(f"{k} {v:,}" for k, v in sorted(stats.dropped.items()))
    return f"{stats.rows_read:,} read, dropped: {dropped or 'none'}"


def _frame(
    chosen: SourceRecords,
    arrival_s: np.ndarray,
    think_s: np.ndarray | None,
    stage_of_unit: np.ndarray | None,
    keep_text: bool,
) -> pd.DataFrame:
    """The trace's rows; session turns sorted by arrival (stable), the others as they come."""
    unit = units(chosen)  # numbered in the arrival order of the units' first requests
    stage = None if stage_of_unit is None else stage_of_unit[unit]
    if chosen.session is not None:
        order = np.argsort(arrival_s, kind="stable")
        chosen, arrival_s, think_s, unit = (
            chosen.take(order),
            arrival_s[order],
            think_s[order],
            unit[order],
        )
        stage = None if stage is None else stage[order]
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
    if chosen.hash_ids is not None:
        columns["hash_ids"] = pd.Series(chosen.hash_ids, dtype=object)
    if chosen.session is not None:
        columns["session_id"] = unit.astype(np.int64)
        columns["turn"] = chosen.turn.astype(np.int64)
        columns["think_s"] = think_s.astype(np.float64)
    if stage is not None:
        columns["stage"] = stage.astype(np.int64)
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
