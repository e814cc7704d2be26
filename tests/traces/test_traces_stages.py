"""--stages: back-to-back stages of rate x duration, exactly round(rate x duration) each."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_traces_cli import one_error_line

from traces.arrivals import ArrivalProcess, Stage, arrival_times, parse_stages
from traces.io import read_trace


def staged(*stages: tuple[float, float]) -> ArrivalProcess:
    return ArrivalProcess("stages", stages=tuple(Stage(r, d) for r, d in stages))


def test_each_stage_sends_its_requests_inside_its_own_span():
    p = staged((8, 60), (20, 30), (0.5, 10))
    n = 8 * 60 + 20 * 30 + 5
    t = arrival_times(p, n, np.random.default_rng(1))
    stage = p.stage_index()
    assert np.bincount(stage).tolist() == [480, 600, 5]
    assert np.all(np.diff(t) >= 0)
    for i, (start, end) in enumerate([(0, 60), (60, 90), (90, 100)]):
        inside = t[stage == i]
        assert inside.min() > start and inside.max() == end  # the last lands on the end
    assert p.meta() == {
        "process": "stages",
        "stages": [
            {"rate": 8, "duration_s": 60, "requests": 480, "start_s": 0.0},
            {"rate": 20, "duration_s": 30, "requests": 600, "start_s": 60.0},
            {"rate": 0.5, "duration_s": 10, "requests": 5, "start_s": 90.0},
        ],
    }


@settings(max_examples=30, deadline=None, derandomize=True)
@given(
    st.lists(st.tuples(st.floats(0.05, 200), st.floats(0.5, 100)), min_size=1, max_size=4),
    st.integers(0, 2**32 - 1),
)
def test_any_stages_give_exact_counts_and_spans(pairs, seed):
    pairs = [(r, d) for r, d in pairs if round(r * d) >= 1] or [(1.0, 1.0)]
    p = staged(*pairs)
    n = sum(round(r * d) for r, d in pairs)
    t = arrival_times(p, n, np.random.default_rng(seed))
    assert len(t) == n and np.all(np.diff(t) >= 0) and t[-1] == sum(d for _, d in pairs)


def test_counts_are_rounded_not_truncated():
    assert [s.requests for s in parse_stages("0.29x100, 8x600")] == [29, 4800]


def test_gaps_are_exponential_rescaled():
    # one long stage: gaps look exponential with mean duration / requests
    t = arrival_times(staged((100, 1000)), 100_000, np.random.default_rng(2))
    gaps = np.diff(np.r_[0.0, t])
    assert abs(gaps.mean() - 0.01) < 1e-9
    assert abs(gaps.std() / gaps.mean() - 1) < 0.02


def test_build_with_stages_writes_the_stage_column_and_metadata(run_cli, sharegpt_file, tmp_path):
    recs = [
        {
            "id": f"c{i}",
            "conversations": [{"from": "human", "value": f"q {i}"}, {"from": "gpt", "value": "a"}],
        }
        for i in range(40)
    ]
    out = tmp_path / "t.parquet"
    r = run_cli("build", "--path", sharegpt_file(recs), "--stages", "2x5,4x5", "-o", out)
    assert r.rc == 0, r.err
    df, meta = read_trace(out)
    assert len(df) == 30 and df["stage"].tolist() == [0] * 10 + [1] * 20
    assert df["arrival_s"].iloc[9] == 5.0 and df["arrival_s"].iloc[-1] == 10.0
    assert meta["arrival"]["process"] == "stages" and len(meta["arrival"]["stages"]) == 2
    shown = json.loads(run_cli("show", out, "--json").out)
    assert [s["in_trace"] for s in shown["stages"]] == [10, 20]
    assert "stages" in run_cli("show", out).out
    few = run_cli("build", "--path", sharegpt_file(recs), "--stages", "5x10", "-o", out)
    one_error_line(few, "--stages (50 requests): only 40 requests remain")


@pytest.mark.parametrize(
    ("stages", "extra", "message"),
    [
        ("8", [], "--stages: expected RATExSECONDS"),
        ("8x", [], "--stages: expected RATExSECONDS"),
        ("ax5", [], "--stages: expected RATExSECONDS"),
        ("8x10,,2x1", [], "--stages: expected RATExSECONDS"),
        ("0x10", [], "--stages: stage 0 (0x10): rate must be > 0"),
        ("2x1,8x-1", [], "--stages: stage 1 (8x-1): duration must be > 0"),
        ("0.01x10", [], "rounds to 0 requests"),
        ("8x10", ["--rate", "2"], "--stages and --rate exclude each other"),
        ("8x10", ["--burst"], "--stages and --burst exclude each other"),
        ("8x10", ["--duration", "5"], "--stages and --duration exclude each other"),
        ("8x10", ["-n", "80"], "--stages and -n exclude each other"),
    ],
)
def test_stage_mistakes_are_one_line_errors(run_cli, tmp_path, stages, extra, message):
    r = run_cli("build", "--stages", stages, *extra, "-o", tmp_path / "t.pq")
    one_error_line(r, message)
