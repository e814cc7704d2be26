"""`ltrsched compare` of two fleets: replica assignment and prefix hits, request by request."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis.compare import compare_runs, fleet_agreement, format_table
from traces.results import add_derived_columns, summarize_run, write_run


def fleet_run(path, replica, cached=None):
    n = len(replica)
    arrival = np.arange(n, dtype=float)
    req = add_derived_columns(
        pd.DataFrame(
            {
                "request_id": np.arange(n),
                "arrival_s": arrival,
                "first_scheduled_s": arrival,
                "first_token_s": arrival + 0.1,
                "finish_s": arrival + 1.0,
                "prompt_tokens": 64,
                "output_tokens": 8,
                "tokens_generated": 8,
                "preemptions": 0,
                "max_token_gap_s": 0.01,
                "status": "finished",
            }
        )
    )
    req["replica"] = replica
    if cached is not None:
        req["cached_tokens"] = cached
    summary = {**summarize_run(req, 0), "policy": "fcfs", "trace": "t.parquet"}
    write_run(path, req, pd.DataFrame(), summary)
    return path


def test_replica_and_hits_are_compared_request_by_request(tmp_path):
    sim = fleet_run(tmp_path / "sim", [0, 1, 0, 1, 0], [0, 0, 32, 32, -1])
    live = fleet_run(tmp_path / "live", [0, 1, 1, 1, -1], [0, 0, 0, 32, 32])
    c = compare_runs(sim, live)
    f = c.fleet
    # request 4 never reached a live replica; request 2 went elsewhere
    assert (f["requests_routed_in_both"], f["same_replica"]) == (4, 3)
    assert f["first_different_replica"] == [2]
    # hits where both reported one (request 4: not in sim): 0, 1 and 3 agree, 2 does not
    assert f["same_cached_tokens"] == 3 and f["same_cached_tokens_share"] == 0.75
    assert "fleet: same replica for 3/4 requests" in format_table(c)


def test_runs_without_replicas_have_no_fleet_section(tmp_path):
    a = fleet_run(tmp_path / "a", [0, 0])
    req = pd.read_parquet(a / "requests.parquet")
    assert compare_runs(a, a).fleet["same_replica_share"] == 1.0
    assert math.isnan(compare_runs(a, a).fleet["same_cached_tokens_share"])
    assert fleet_agreement(req.drop(columns="replica"), req) is None
