"""The step log's ends and step-to-step gaps, whether steps come one by one or in stretches:
the same floats as numpy's diff over the end column (the fast and step-by-step engines
must add up identical numbers)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.step_log import StepLog

durations = st.floats(min_value=1e-6, max_value=10.0, allow_nan=False)
chunks = st.lists(st.lists(durations, min_size=1, max_size=20), min_size=1, max_size=20)


@settings(max_examples=60, deadline=None)
@given(chunks=chunks, single=st.lists(st.booleans(), min_size=20, max_size=20))
def test_gaps_and_ends_match_the_end_column(chunks, single):
    log = StepLog(capacity=4)
    now = 0.0
    for durs, one_by_one in zip(chunks, single, strict=False):
        ends = np.add.accumulate(np.concatenate(([now], durs)))[1:]
        if one_by_one:
            for end in ends.tolist():
                log.append(end, start_s=now, duration_s=end - now)
                now = end
        else:
            log.extend(len(ends), ends, start_s=np.concatenate(([now], ends[:-1])))
            now = float(ends[-1])
    end_s = log.end_s
    assert len(end_s) == log.n and log.frame_dict()["start_s"].shape == (log.n,)
    assert [log.end_of(g) for g in range(log.n)] == end_s.tolist()
    diffs = np.diff(end_s)
    for lo in range(1, log.n):
        for hi in (lo + 1, log.n):
            if hi > lo:
                assert log.max_gap(lo, hi) == float(np.max(diffs[lo - 1 : hi - 1]))


def test_columns_not_given_are_zero_and_capacity_grows():
    log = StepLog(capacity=1)
    log.append(1.0, start_s=0.0, prefill_tokens=5)
    log.append(2.5, start_s=1.0)
    log.extend(3, np.array([3.0, 4.0, 5.0]), decode_requests=2)
    frame = log.frame_dict()
    assert frame["prefill_tokens"].tolist() == [5, 0, 0, 0, 0]
    assert frame["decode_requests"].tolist() == [0, 0, 2, 2, 2]
    assert log.max_gap(1, 5) == 1.5 and log.start_of(1) == 1.0


@settings(max_examples=40, deadline=None)
@given(
    durs=st.lists(durations, min_size=2, max_size=700),
    queries=st.lists(st.tuples(st.integers(0, 699), st.integers(0, 699)), max_size=30),
)
def test_long_gap_ranges_read_block_maxima_exactly(durs, queries):
    """max_gap over ranges longer than a few blocks, asked while steps keep coming (the
    block maxima are built as queries reach them): numpy's max over the same diffs."""
    log = StepLog(capacity=2)
    now = 0.0
    asked = iter(sorted(queries, key=max))
    pending = next(asked, None)
    for d in durs:
        end = now + d
        log.append_row(end, (now, d) + (0,) * 12)
        now = end
        while pending is not None and max(pending) < log.n:
            lo, hi = sorted(pending)
            lo = max(lo, 1)
            if hi > lo:
                diffs = np.diff(log.end_s)
                assert log.max_gap(lo, hi) == float(np.max(diffs[lo - 1 : hi - 1]))
            pending = next(asked, None)
    diffs = np.diff(log.end_s)
    for lo in range(1, log.n, 7):
        assert log.max_gap(lo, log.n) == float(np.max(diffs[lo - 1 :]))
