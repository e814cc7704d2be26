"""Routers: known answers on hand-made replica loads and a fake prefix probe, spec errors,
determinism, and properties."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from policies.approx_oracle import ApproxOracle
from policies.base import RequestView
from policies.routing import (
    ReplicaLoad,
    RouteRequest,
    RouterError,
    available_routers,
    make_router,
)
from policies.routing.cli import app
from policies.routing.load import dp_load_score
from policies.routing.weighted import TIE_TOLERANCE

NAMES = {"round-robin", "least-loaded", "vllm-dp", "prefix", "weighted", "session", "length"}


class FakeProbe:
    """Cached prefix tokens by (replica, request id); 0 where not given."""

    def __init__(self, hits: dict[tuple[int, int], int] | None = None) -> None:
        self.hits = hits or {}

    def cached_prefix_tokens(self, replica: int, request_id: int) -> int:
        return self.hits.get((replica, request_id), 0)


NO_CACHE = FakeProbe()


def loads(*rows: tuple[int, ...]) -> list[ReplicaLoad]:
    """One ReplicaLoad per (waiting, running[, kv_blocks_used]) row; 100 blocks each."""
    out = []
    for i, row in enumerate(rows):
        waiting, running, used = (*row, 0)[:3]
        out.append(ReplicaLoad(i, waiting, running, used, 100, 0.0))
    return out


def req(
    request_id: int = 0,
    prompt_tokens: int = 100,
    output_tokens: int | None = 10,
    session_id: int = -1,
    **features: float,
) -> RouteRequest:
    view = RequestView(
        request_id=request_id,
        arrival_s=float(request_id),
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
        features=features,
    )
    return RouteRequest(view=view, session_id=session_id)


def test_every_router_is_listed_with_a_doc():
    docs = available_routers()
    assert set(docs) == NAMES
    assert all(doc and "\n" not in doc for doc in docs.values())


# -- round-robin and least-loaded ------------------------------------------------------


def test_round_robin_cycles_whatever_the_load():
    router = make_router("round-robin")
    router.prepare([], 3)
    skewed = loads((50, 9), (0, 0), (0, 0))
    assert [router.route(req(i), skewed, NO_CACHE, 0.0) for i in range(7)] == [
        0,
        1,
        2,
        0,
        1,
        2,
        0,
    ]
    router.prepare([], 3)  # a new run starts the cycle again
    assert router.route(req(0), skewed, NO_CACHE, 0.0) == 0


def test_least_loaded_uses_vllms_dp_score():
    # scores: 2*4+1 = 9, 0*4+8 = 8, 1*4+5 = 9
    replicas = loads((2, 1), (0, 8), (1, 5))
    assert [dp_load_score(r) for r in replicas] == [9, 8, 9]
    assert make_router("least-loaded").route(req(), replicas, NO_CACHE, 0.0) == 1


def test_least_loaded_ties_go_to_the_lowest_index():
    # 1*4+0 = 4 = 0*4+4 on replicas 1 and 2; replica 0 is heavier
    replicas = loads((3, 0), (1, 0), (0, 4))
    assert make_router("least-loaded").route(req(), replicas, NO_CACHE, 0.0) == 1


def test_vllm_dp_scores_worked_by_hand():
    # vLLM 0.32: max(in flight, waiting + running) + waiting * 6 * max(0, kv - 0.5).
    # replica 0: max(0, 2+1) + 2*6*0.25 = 6.0; replica 1: max(0, 0+5) = 5.0;
    # replica 2: max(0, 1+3) + 1*6*0.0 = 4.0 (kv 40%: no penalty)
    router = make_router("vllm-dp")
    router.prepare([], 3)
    replicas = loads((2, 1, 75), (0, 5, 90), (1, 3, 40))
    assert [router.score(r) for r in replicas] == [6.0, 5.0, 4.0]
    assert router.route(req(0), replicas, NO_CACHE, 0.0) == 2
    # the request just sent counts as waiting on replica 2 until its load is refreshed:
    # 2+3 = 5, which ties replica 1; the scan now starts at replica 1, so 1 wins
    assert router.score(replicas[2]) == 5.0
    assert router.route(req(1), replicas, NO_CACHE, 0.0) == 1
    # a refreshed load (newer as_of_s) replaces the router's own count
    fresh = [
        ReplicaLoad(i, r.waiting, r.running, r.kv_blocks_used, 100, 1.0)
        for i, r in enumerate(replicas)
    ]
    assert router.score(fresh[2]) == 4.0


def test_vllm_dp_spreads_ties_round_robin_and_counts_in_flight():
    router = make_router("vllm-dp")
    router.prepare([], 3)
    idle = loads((0, 0), (0, 0), (0, 0))
    picks = [router.route(req(i), idle, NO_CACHE, 0.0) for i in range(6)]
    assert picks == [0, 1, 2, 0, 1, 2]
    # stats never refresh here, so the in-flight count (2 each) floors every score
    stale = [ReplicaLoad(i, 0, 0, 0, 100, 5.0) for i in range(3)]
    assert [router.score(r) for r in stale] == [2.0, 2.0, 2.0]
    router.on_finish(1, 1, 1.0)
    router.on_finish(4, 1, 1.0)
    assert router.route(req(6), stale, NO_CACHE, 5.0) == 1


# -- prefix ----------------------------------------------------------------------------


def test_prefix_goes_to_the_longest_cached_prefix_even_when_loaded():
    replicas = loads((0, 0), (5, 5), (0, 1))
    probe = FakeProbe({(1, 7): 64, (2, 7): 32})
    assert make_router("prefix").route(req(7), replicas, probe, 0.0) == 1


def test_prefix_ties_on_the_hit_go_to_the_less_loaded_then_lowest_index():
    replicas = loads((3, 0), (1, 0), (1, 0), (0, 0))
    probe = FakeProbe({(0, 1): 48, (1, 1): 48, (2, 1): 48})
    assert make_router("prefix").route(req(1), replicas, probe, 0.0) == 1


def test_prefix_without_a_hit_falls_back_to_least_loaded():
    replicas = loads((2, 0), (0, 3), (0, 1))
    assert make_router("prefix").route(req(), replicas, NO_CACHE, 0.0) == 2


def test_prefix_min_hit_ignores_small_hits():
    replicas = loads((2, 0), (0, 3), (0, 1))
    probe = FakeProbe({(0, 0): 30})  # 30 of 100 prompt tokens
    assert make_router("prefix").route(req(), replicas, probe, 0.0) == 0
    assert make_router("prefix:min_hit=0.3").route(req(), replicas, probe, 0.0) == 2
    assert make_router("prefix:min_hit=0.29").route(req(), replicas, probe, 0.0) == 0


def test_prefix_goes_least_loaded_when_the_fleet_is_imbalanced():
    # scores 9*4 = 36 and 1: gap 35
    replicas = loads((9, 0), (0, 1))
    probe = FakeProbe({(0, 0): 90})
    assert make_router("prefix:balance_abs=35").route(req(), replicas, probe, 0.0) == 0
    assert make_router("prefix:balance_abs=34").route(req(), replicas, probe, 0.0) == 1
    # SGLang's relative test too: 36 > 40 x 1 fails, so not imbalanced
    router = make_router("prefix:balance_abs=10,balance_rel=40")
    assert router.route(req(), replicas, probe, 0.0) == 0


# -- weighted --------------------------------------------------------------------------


def test_weighted_scores_worked_by_hand_with_llm_ds_default_weights():
    # prompt 100 tokens; waiting 4, 0, 2 (max 4, min 0); kv used 50, 20, 90 of 100
    replicas = loads((4, 2, 50), (0, 5, 20), (2, 1, 90))
    probe = FakeProbe({(0, 3): 80, (2, 3): 40})
    router = make_router("weighted")
    assert router.describe() == "weighted:prefix=3.0,queue=2.0,kv=2.0,session=0.0"
    scores = router.scores(req(3), replicas, probe)
    assert scores["prefix"] == pytest.approx([0.8, 0.0, 0.4])
    assert scores["queue"] == pytest.approx([0.0, 1.0, 0.5])
    assert scores["kv"] == pytest.approx([0.5, 0.8, 0.1])
    assert "session" not in scores
    # 3*0.8 + 2*0 + 2*0.5 = 3.4; 0 + 2 + 1.6 = 3.6; 1.2 + 1 + 0.2 = 2.4
    assert router.totals(req(3), replicas, probe) == pytest.approx([3.4, 3.6, 2.4])
    assert router.route(req(3), replicas, probe, 0.0) == 1
    # without the KV scorer: 2.4, 2.0, 2.2 -> the prefix hit wins
    assert make_router("weighted:kv=0").route(req(3), replicas, probe, 0.0) == 0


def test_weighted_queue_scores_are_one_when_queues_are_equal():
    replicas = loads((3, 0, 10), (3, 9, 10))
    router = make_router("weighted:prefix=0,kv=0")
    assert router.scores(req(), replicas, NO_CACHE) == {"queue": [1.0, 1.0]}
    assert router.route(req(), replicas, NO_CACHE, 0.0) == 0


def test_weighted_ties_go_to_the_lowest_index():
    replicas = loads((5, 0, 0), (1, 0, 30), (1, 0, 30))
    assert make_router("weighted").route(req(), replicas, NO_CACHE, 0.0) == 1


def test_weighted_session_scorer_follows_the_previous_turn():
    router = make_router("weighted:prefix=0,queue=1,kv=0,session=2")
    router.prepare([], 2)
    first = router.route(req(0, session_id=5), loads((1, 0), (0, 0)), NO_CACHE, 0.0)
    assert first == 1
    # now replica 1 has the longer queue (queue score 0), but affinity 2 > 1
    assert router.route(req(1, session_id=5), loads((0, 0), (1, 0)), NO_CACHE, 0.0) == 1
    assert router.route(req(2, session_id=6), loads((0, 0), (1, 0)), NO_CACHE, 0.0) == 0


def test_weighted_prefix_score_is_capped_at_one():
    probe = FakeProbe({(0, 0): 500})
    router = make_router("weighted:queue=0,kv=0")
    assert router.scores(req(prompt_tokens=100), loads((0, 0)), probe)["prefix"] == [1.0]


# -- session ---------------------------------------------------------------------------


def test_session_sticks_to_the_first_turns_replica():
    router = make_router("session:max_imbalance=8")
    router.prepare([], 3)
    assert router.route(req(0, session_id=1), loads((1, 0), (1, 0), (0, 0)), NO_CACHE, 0) == 2
    # replica 2 is now heavier than replica 0 by 2*4+1 - 0 = 9 > 8: the session moves
    busy = loads((0, 0), (0, 1), (2, 1))
    assert router.route(req(1, session_id=1), busy, NO_CACHE, 1.0) == 0
    # and the session now lives on replica 0: gap 4 - 0 <= 8 keeps it there
    assert router.route(req(2, session_id=1), loads((1, 0), (0, 0), (0, 0)), NO_CACHE, 2) == 0


def test_session_stays_within_the_threshold():
    router = make_router("session:max_imbalance=9")
    router.prepare([], 3)
    router.route(req(0, session_id=1), loads((1, 0), (1, 0), (0, 0)), NO_CACHE, 0.0)
    assert router.route(req(1, session_id=1), loads((0, 0), (0, 1), (2, 1)), NO_CACHE, 1) == 2


def test_requests_without_a_session_go_least_loaded():
    router = make_router("session")
    assert router.route(req(0), loads((1, 0), (0, 2)), NO_CACHE, 0.0) == 1
    assert router.route(req(1), loads((0, 0), (0, 2)), NO_CACHE, 0.0) == 0


# -- length ----------------------------------------------------------------------------


def views(lengths, **columns):
    return [
        RequestView(
            request_id=i,
            arrival_s=float(i),
            prompt_tokens=10,
            output_tokens=length,
            features={name: float(col[i]) for name, col in columns.items()},
        )
        for i, length in enumerate(lengths)
    ]


def test_length_work_tracks_predicted_outstanding_tokens():
    trace = views([100, 10, 10, 50, 5])
    router = make_router("length")  # mode=work, the true length
    router.prepare(trace, 2)
    flat = loads((0, 0), (0, 0))
    picks = [router.route(RouteRequest(v), flat, NO_CACHE, 0.0) for v in trace[:4]]
    assert picks == [0, 1, 1, 1]
    assert router.outstanding_tokens(2) == [100, 70]
    router.on_finish(0, 0, 1.0)
    assert router.outstanding_tokens(2) == [0, 70]
    assert router.route(RouteRequest(trace[4]), flat, NO_CACHE, 1.0) == 0
    router.prepare(trace, 2)  # a new run starts from nothing
    assert router.outstanding_tokens(2) == [0, 0]


def test_length_work_reads_pred_tokens_rounded_to_at_least_one():
    trace = views([1, 1, 1], pred_tokens_a=[0.2, 7.6, 3.0])
    router = make_router("length:col=pred_tokens_a")
    router.prepare(trace, 3)
    assert [router.predicted_tokens(v) for v in trace] == [1, 8, 3]
    assert router.requires == ("features:pred_tokens_a",)


def test_length_split_keeps_short_and_long_apart():
    trace = views(list(range(1, 11)))
    router = make_router("length:mode=split")  # quantile 0.5: short <= 5
    router.prepare(trace, 4)
    replicas = loads((1, 0), (0, 0), (0, 3), (0, 2))
    picks = {v.output_tokens: router.route(RouteRequest(v), replicas, NO_CACHE, 0) for v in trace}
    assert picks == {n: 1 if n <= 5 else 3 for n in range(1, 11)}


def test_length_split_by_score_quantile_and_by_threshold():
    lengths = list(range(1, 11))
    trace = views(lengths, score_a=[-n for n in lengths])  # higher score = shorter
    replicas = loads((0, 0), (0, 0), (0, 0))
    by_score = make_router("length:mode=split,col=score_a,quantile=0.3,short_replicas=2")
    by_score.prepare(trace, 3)
    groups = [by_score.route(RouteRequest(v), replicas, NO_CACHE, 0) for v in trace]
    assert groups == [0, 0, 0] + [2] * 7
    by_tokens = make_router("length:mode=split,threshold_tokens=7")
    assert [by_tokens.route(RouteRequest(v), replicas, NO_CACHE, 0) for v in trace] == [0] * 7 + [
        1
    ] * 3


def test_length_split_on_one_replica_sends_everything_there():
    router = make_router("length:mode=split,threshold_tokens=3")
    assert router.route(RouteRequest(views([9])[0]), loads((0, 0)), NO_CACHE, 0.0) == 0


def test_length_tau_one_predicts_the_true_lengths():
    lengths = [int(x) for x in np.random.default_rng(0).integers(1, 500, 300)]
    trace = views(lengths)
    router = make_router("length:tau=1")
    router.prepare(trace, 2)
    assert [router.predicted_tokens(v) for v in trace] == lengths


def test_length_tau_predictions_order_as_the_approx_oracle_policy():
    lengths = [int(x) for x in np.random.default_rng(1).integers(1, 2000, 400)]
    trace = views(lengths)
    router = make_router("length:tau=0.5,seed=3")
    router.prepare(trace, 2)
    predicted = [router.predicted_tokens(v) for v in trace]
    assert sorted(predicted) == sorted(lengths)  # a permutation of the true lengths
    policy = ApproxOracle(tau=0.5, seed=3)
    policy.prepare(trace)
    by_policy = sorted(trace, key=lambda v: (policy.key(v, 0.0), v.request_id))
    assert [predicted[v.request_id] for v in by_policy] == sorted(lengths)
    other = make_router("length:tau=0.5,seed=4")
    other.prepare(trace, 2)
    assert [other.predicted_tokens(v) for v in trace] != predicted


def test_length_tau_needs_prepare():
    with pytest.raises(RouterError, match="needs prepare"):
        make_router("length:tau=0.5").predicted_tokens(views([3])[0])


# -- specs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope", "unknown router 'nope'; available: least-loaded, length, prefix"),
        ("round", "unknown router 'round' (did you mean round-robin?)"),
        ("lenght", "unknown router 'lenght' (did you mean length?)"),
        ("weighted:prefx=2", "router 'weighted' has no parameter 'prefx' (did you mean prefix?)"),
        ("session:max=3", "no parameter 'max' (did you mean max_imbalance?); valid: max_imbalance"),
        ("round-robin:n=2", "router 'round-robin' has no parameter 'n'; valid: none"),
        ("weighted:queue=lots", "router 'weighted': bad value 'lots' for queue (expected float)"),
        ("weighted:kv", "router 'weighted': expected key=value, got 'kv'"),
        ("weighted:kv=1,kv=2", "parameter 'kv' given twice"),
        (":kv=1", "empty router name"),
        ("weighted:prefix=0,queue=0,kv=0", "at least one weight > 0"),
        ("weighted:queue=-1", "queue weight must be >= 0"),
        ("prefix:min_hit=1", "min_hit must be in [0, 1)"),
        ("length:mode=wrk", "unknown mode 'wrk' (did you mean work?); valid: work, split"),
        ("length:col=score_a", "mode=work needs token predictions"),
        ("length:col=foo", "col must be output_tokens, pred_tokens_* or score_*"),
        ("length:col=output_tokens,tau=0.5", "give col= or tau=, not both"),
        ("length:tau=2", "tau must be in [-1, 1]"),
        ("length:quantile=0.5", "quantile only with mode=split"),
        ("length:mode=split,quantile=1", "quantile must be in (0, 1)"),
        ("length:mode=split,quantile=0.2,threshold_tokens=9", "not both"),
        ("length:mode=split,col=score_a,threshold_tokens=9", "use quantile="),
        ("length:mode=split,short_replicas=0", "short_replicas must be >= 1"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec, message):
    with pytest.raises(RouterError) as info:
        make_router(spec)
    assert message in str(info.value)


@pytest.mark.parametrize(
    "spec",
    [
        "round-robin",
        "least-loaded",
        "prefix:min_hit=0.25,balance_abs=32,balance_rel=1.5",
        "weighted:prefix=3,queue=2,kv=0,session=1",
        "session:max_imbalance=3",
        "length",
        "length:tau=0.7,seed=2",
        "length:mode=split,col=score_x,quantile=0.8,short_replicas=1",
        "length:mode=split,col=pred_tokens_x,threshold_tokens=200",
    ],
)
def test_describe_rebuilds_the_router(spec):
    router = make_router(spec)
    again = make_router(router.describe())
    assert again == router
    assert again.describe() == router.describe()


def test_cli_lists_every_router_and_checks_a_spec():
    runner = CliRunner()
    listed = runner.invoke(app, ["list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    for name in NAMES:
        assert name in listed.output
    shown = runner.invoke(app, ["show", "weighted:kv=0"])
    assert shown.exit_code == 0, shown.output
    assert "weighted:prefix=3.0,queue=2.0,kv=0.0,session=0.0" in shown.output
    assert "uses_prefix_cache=true" in shown.output


def test_ltrsched_routers_errors_are_one_line():
    from ltrsched.cli import main

    assert main(["routers", "show", "weighted:prefx=2"]) != 0


# -- determinism and properties --------------------------------------------------------

load_rows = st.lists(
    st.tuples(st.integers(0, 20), st.integers(0, 20), st.integers(0, 100)), min_size=1, max_size=6
)


def _drive(spec: str, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    trace = views([int(x) for x in rng.integers(1, 300, 60)])
    router = make_router(spec)
    router.prepare(trace, 4)
    probe = FakeProbe({(int(rng.integers(4)), i): int(rng.integers(0, 10)) for i in range(60)})
    picks = []
    for v in trace:
        replicas = loads(*[tuple(int(x) for x in rng.integers(0, 6, 3)) for _ in range(4)])
        request = RouteRequest(v, session_id=int(rng.integers(-1, 8)))
        picks.append(router.route(request, replicas, probe, v.arrival_s))
        if v.request_id % 3 == 2:
            router.on_finish(v.request_id - 1, picks[-2], v.arrival_s)
    return picks


@pytest.mark.parametrize(
    "spec",
    ["round-robin", "least-loaded", "prefix", "weighted:session=1", "session", "length",
     "length:tau=0.4", "length:mode=split"],
)  # fmt: skip
def test_same_inputs_same_routes(spec):
    assert _drive(spec, 7) == _drive(spec, 7)


@settings(max_examples=60, deadline=None)
@given(num_replicas=st.integers(1, 8), num_requests=st.integers(0, 100))
def test_round_robin_counts_differ_by_at_most_one(num_replicas, num_requests):
    router = make_router("round-robin")
    replicas = loads(*[(0, 0)] * num_replicas)
    counts = Counter(router.route(req(i), replicas, NO_CACHE, 0.0) for i in range(num_requests))
    per_replica = [counts.get(i, 0) for i in range(num_replicas)]
    assert max(per_replica) - min(per_replica) <= 1
    assert sum(per_replica) == num_requests


@settings(max_examples=100, deadline=None)
@given(rows=load_rows)
def test_least_loaded_picks_a_minimum_score_replica(rows):
    replicas = loads(*rows)
    index = make_router("least-loaded").route(req(), replicas, NO_CACHE, 0.0)
    scores = [dp_load_score(r) for r in replicas]
    assert scores[index] == min(scores)
    assert index == scores.index(min(scores))


@settings(max_examples=100, deadline=None)
@given(
    rows=load_rows,
    hits=st.lists(st.integers(0, 150), min_size=6, max_size=6),
    weights=st.tuples(*[st.sampled_from([0, 0.5, 1, 2, 3])] * 3).filter(any),
)
def test_weighted_picks_the_first_best_total_and_scores_stay_in_unit_range(rows, hits, weights):
    replicas = loads(*rows)
    probe = FakeProbe({(i, 0): hits[i] for i in range(len(rows))})
    router = make_router("weighted:prefix={},queue={},kv={}".format(*weights))
    for per_replica in router.scores(req(), replicas, probe).values():
        assert all(0.0 <= s <= 1.0 for s in per_replica)
    totals = router.totals(req(), replicas, probe)
    index = router.route(req(), replicas, probe, 0.0)
    assert totals[index] >= max(totals) - TIE_TOLERANCE
    assert all(t < max(totals) - TIE_TOLERANCE for t in totals[:index])


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 1000), min_size=1, max_size=40),
    finish_every=st.integers(1, 5),
    num_replicas=st.integers(1, 5),
)
def test_length_work_outstanding_is_the_unfinished_predictions(lengths, finish_every, num_replicas):
    trace = views(lengths)
    router = make_router("length")
    router.prepare(trace, num_replicas)
    replicas = loads(*[(0, 0)] * num_replicas)
    live: dict[int, tuple[int, int]] = {}
    for v in trace:
        before = router.outstanding_tokens(num_replicas)
        index = router.route(RouteRequest(v), replicas, NO_CACHE, 0.0)
        assert before[index] == min(before)
        live[v.request_id] = (index, v.output_tokens)
        if v.request_id % finish_every == 0:
            oldest = min(live)
            router.on_finish(oldest, live.pop(oldest)[0], 0.0)
    expected = [0] * num_replicas
    for index, tokens in live.values():
        expected[index] += tokens
    assert router.outstanding_tokens(num_replicas) == expected
