"""Sessions in the build pipeline: a session is the unit that is picked and timed.

With --turns all a record is one turn; the records of a session are contiguous, turns
0, 1, ... in order. -n, --shuffle, --duration and the arrival process count sessions
(units); without sessions every record is a unit of its own, so the same code gives
today's traces. Turn 0 arrives when its session starts; turn k arrives, open loop,
think_s after turn k-1's arrival (engines send it think_s after turn k-1 finishes).
"""

from __future__ import annotations

import numpy as np

from traces.distributions import TimeDist
from traces.records import SESSION_CUT, LoadStats, SourceRecords


def units(records: SourceRecords) -> np.ndarray:
    """Each record's unit: its session (0, 1, ... in record order), or itself.

    A kept session always keeps its turn 0, so turn 0 starts each unit.
    """
    if records.session is None:
        return np.arange(len(records))
    return np.cumsum(records.turn == 0) - 1


def num_units(records: SourceRecords) -> int:
    return len(records) if records.session is None else int(np.sum(records.turn == 0))


def take_units(records: SourceRecords, chosen: np.ndarray) -> SourceRecords:
    """The records of the `chosen` units, in that order, each session's turns in order."""
    if records.session is None:
        return records.take(chosen)
    first = np.flatnonzero(records.turn == 0)
    ends = np.append(first[1:], len(records))
    index = [np.arange(first[u], ends[u]) for u in chosen]
    return records.take(np.concatenate(index) if index else np.zeros(0, dtype=np.int64))


def cut_sessions(records: SourceRecords, keep: np.ndarray, stats: LoadStats) -> np.ndarray:
    """Keep a turn only if every earlier turn of its session is kept; count the cut.

    A session ends at its first dropped turn (counted under that turn's reason); the
    turns after it, which hold its tokens in their prompts, count as session_cut.
    """
    unit = units(records)
    first_drop = np.full(num_units(records), np.iinfo(np.int64).max)
    np.minimum.at(first_drop, unit[~keep], records.turn[~keep])
    after_drop = records.turn > first_drop[unit]
    stats.drop(SESSION_CUT, int((keep & after_drop).sum()))
    return keep & ~after_drop


def turn_arrivals(
    records: SourceRecords, starts: np.ndarray, think: TimeDist, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray | None]:
    """Arrival of every record, and think_s of session turns (None without sessions)."""
    if records.session is None:
        return starts, None
    later = records.turn > 0
    think_s = np.zeros(len(records), dtype=np.float64)
    think_s[later] = think.sample(rng, int(later.sum()))
    arrival_s = np.empty(len(records), dtype=np.float64)
    unit = units(records)
    for i in range(len(records)):
        arrival_s[i] = arrival_s[i - 1] + think_s[i] if later[i] else starts[unit[i]]
    return arrival_s, think_s


def next_turns(trace) -> np.ndarray | None:
    """Per row of a trace table, the row of its session's next turn (-1: its last turn),
    turns following each other by `turn` within `session_id`; None without sessions."""
    if "session_id" not in trace.columns:
        return None
    n = len(trace)
    succ = np.full(n, -1, np.int64)
    turn = trace["turn"].to_numpy(np.int64) if "turn" in trace.columns else np.zeros(n, np.int64)
    sid = trace["session_id"].to_numpy()
    order = np.lexsort((turn, sid))
    same = sid[order][1:] == sid[order][:-1]
    succ[order[:-1][same]] = order[1:][same]
    return succ


def sessions_meta(think: TimeDist, max_turns: int | None, count: int) -> dict:
    """What the trace's metadata says about its sessions."""
    return {
        "turns": "all",
        "max_turns": max_turns,
        "think_dist": think.spec,
        "num_sessions": count,
        "arrival_s": "turn 0 from the arrival process; turn k: turn k-1's arrival_s + think_s "
        "(open loop; engines send it think_s after turn k-1 finishes)",
    }
