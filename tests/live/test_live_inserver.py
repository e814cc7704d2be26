"""In-server scoring (live/inserver.py) with stand-in requests and predictors: what is
scored, what keeps its own score, one batch per step, and the fallback on failure."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from live_fakes import FakeRequest

from live.inserver import FALLBACK_SCORE, InServerScorer
from live.tracker import RequestTracker
from live.xargs import RequestTag
from policies import make_policy

COL = "score_p"


class Prompted(FakeRequest):
    def __init__(self, vid: str, ids: list[int], priority: int = 0) -> None:
        super().__init__(vid, num_prompt_tokens=len(ids), priority=priority)
        self.prompt_token_ids = ids


def scorer(calls: list[list[str]], fail: bool = False) -> InServerScorer:
    def predict(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        if fail:
            raise RuntimeError("predictor broke")
        return np.array([-float(len(t)) for t in texts]), None  # shorter text, higher score

    return InServerScorer(COL, predict, lambda ids: "x" * sum(ids), max_decode_ids=3)


def add(tracker: RequestTracker, s: InServerScorer, request, features=None):
    view = tracker.add(request, RequestTag(features=features or {}), 0.0)
    s.offer(request, view)
    return view


def test_newcomers_are_scored_in_one_batch_and_keep_their_score():
    calls: list[list[str]] = []
    s, tracker = scorer(calls), RequestTracker(score_column=COL)
    views = [add(tracker, s, Prompted(f"r{i}", [1] * (i + 1))) for i in range(3)]
    assert s.score_pending() == (3, pytest.approx(s.seconds))
    assert calls == [["x", "xx", "xxx"]]  # one batch
    assert [v.features[COL] for v in views] == [-1.0, -2.0, -3.0]
    assert s.score_pending() == (0, 0.0) and len(calls) == 1  # nothing new: no call
    # the decode sees at most max_decode_ids ids (the predictor cuts the prompt anyway)
    add(tracker, s, Prompted("long", [1] * 10))
    s.score_pending()
    assert calls[-1] == ["xxx"]


def test_a_request_with_its_own_score_or_priority_is_not_scored():
    calls: list[list[str]] = []
    s, tracker = scorer(calls), RequestTracker(score_column=COL)
    own = add(tracker, s, Prompted("own", [1]), {COL: 7.5})
    prio = add(tracker, s, Prompted("prio", [1], priority=3))
    plain = add(tracker, s, Prompted("plain", [1, 1]))
    s.score_pending()
    assert calls == [["xx"]]
    assert own.features[COL] == 7.5 and prio.features[COL] == -3.0
    assert plain.features[COL] == -2.0
    assert "score_priority" not in plain.features  # only the scorer's column: ltr finds it


def test_a_failing_predictor_falls_back_to_arrival_order_and_logs_once(caplog):
    calls: list[list[str]] = []
    s, tracker = scorer(calls, fail=True), RequestTracker(score_column=COL)
    with caplog.at_level(logging.ERROR, logger="ltrsched.live"):
        first = [add(tracker, s, Prompted(f"a{i}", [1])) for i in range(2)]
        s.score_pending()
        second = add(tracker, s, Prompted("b", [1]))
        s.score_pending()
    assert [v.features[COL] for v in [*first, second]] == [FALLBACK_SCORE] * 3
    assert s.failures == 3 and "predictor broke" in s.first_error
    assert len([r for r in caplog.records if "predictor failed" in r.message]) == 1
    # ltr orders the affected requests among themselves by arrival (the tie-breaker)
    keys, _ = tracker.rank_keys(make_policy("ltr"), 0.0)
    assert sorted(keys, key=keys.get) == ["a0", "a1", "b"]


def test_a_prompt_without_token_ids_falls_back_alone():
    calls: list[list[str]] = []
    s, tracker = scorer(calls), RequestTracker(score_column=COL)
    v = add(tracker, s, FakeRequest("embeds"))  # no prompt_token_ids (prompt embeddings)
    w = add(tracker, s, Prompted("ids", [1, 1]))
    assert s.score_pending()[0] == 2
    assert v.features[COL] == FALLBACK_SCORE and w.features[COL] == -2.0
    assert s.failures == 1 and calls == [["xx"]]


def test_a_score_under_another_name_becomes_the_column():
    calls: list[list[str]] = []
    s, tracker = scorer(calls), RequestTracker(score_column=COL)
    v = add(tracker, s, Prompted("c", [1]), {"score_client": 4.0})
    s.score_pending()
    assert calls == [] and v.features == {COL: 4.0}
    keys, _ = tracker.rank_keys(make_policy("ltr"), 0.0)  # one score column: ltr finds it
    assert keys["c"][0] == -4.0


def test_large_batches_go_through_the_predictor_in_chunks():
    from live.inserver import SCORE_CHUNK

    calls: list[list[str]] = []
    s, tracker = scorer(calls), RequestTracker(score_column=COL)
    for i in range(SCORE_CHUNK + 5):
        add(tracker, s, Prompted(f"r{i}", [1]))
    assert s.score_pending()[0] == SCORE_CHUNK + 5
    assert [len(c) for c in calls] == [SCORE_CHUNK, 5]


def test_a_distributional_predictor_gives_requests_their_bins():
    from policies.lengthdist import NUM_BINS, dist_columns

    probs = np.full(NUM_BINS, 1.0 / NUM_BINS)
    s = InServerScorer(COL, lambda texts: (np.zeros(len(texts)), np.tile(probs, (len(texts), 1))),
                       lambda ids: "x", dist_columns=dist_columns("p"))
    tracker = RequestTracker(score_column=COL)
    v = add(tracker, s, Prompted("r", [1]))
    s.score_pending()
    assert [v.features[c] for c in dist_columns("p")] == list(probs)
    keys, _ = tracker.rank_keys(make_policy("gittins:starvation=200,quantum=10"), 0.0)
    assert "r" in keys


def test_a_dropped_request_leaves_no_policy_state():
    from live.config import PluginConfig
    from live.policy_run import PolicyRun
    from policies.lengthdist import NUM_BINS, dist_columns

    run = PolicyRun.start("r", PluginConfig(policy="gittins:starvation=1,quantum=10"), 0.0, {})
    feats = dict.fromkeys(dist_columns("p"), 1.0 / NUM_BINS)
    for i in range(3):
        run.add(Prompted(f"r{i}", [1]), RequestTag(request_id=i, features=feats), 0.0)
    run.tracker.rank_keys(run.policy, 0.0)
    run.tracker.after_step({"r0": 1}, (), 0.0, 0.01, {"r0"})
    run.tracker.rank_keys(run.policy, 0.02)  # r1, r2 waited a step: promoted
    assert set(run.policy.inner.cache) == {0, 1, 2} and set(run.policy.promoted) == {1, 2}
    for vid in ("r0", "r1", "r2"):
        run.tracker.drop(vid)
    assert not run.policy.inner.cache and not run.policy.promoted


def test_the_score_survives_preemption():
    calls: list[list[str]] = []
    s, tracker = scorer(calls), RequestTracker(score_column=COL)
    v = add(tracker, s, Prompted("r", [1, 1]))
    s.score_pending()
    tracker.rank_keys(make_policy("ltr"), 0.0)
    tracker.after_step({"r": 1}, (), 0.0, 0.01, {"r"})
    tracker.after_step({}, ("r",), 0.01, 0.02, set())  # preempted back to waiting
    s.score_pending()
    assert len(calls) == 1 and v.features[COL] == -2.0


def test_overlap_mode_scores_in_a_thread_and_orders_unscored_requests_last():
    calls: list[list[str]] = []
    s, tracker = scorer(calls), RequestTracker(score_column=COL)
    s.overlap = True
    policy = make_policy("ltr")
    add(tracker, s, Prompted("old", [1, 1, 1]))
    s.start_scoring()
    s.in_flight[0].result(timeout=10)
    assert s.score_pending()[0] == 1  # applied at the next schedule(), without waiting
    add(tracker, s, Prompted("new", [1]))  # arrives: not scored yet
    assert s.score_pending()[0] == 0
    keys, _ = tracker.rank_keys(policy, 0.0)
    assert list(keys) == ["old"]  # the newcomer has no key: the queue puts it last
    s.start_scoring()
    s.in_flight[0].result(timeout=10)
    s.score_pending()
    keys, _ = tracker.rank_keys(policy, 0.0)
    assert sorted(keys, key=keys.get) == ["new", "old"]  # shorter text, higher score
    assert len(calls) == 2
    s.close()


def test_one_batch_in_flight_at_a_time():
    release = []

    def slow(texts):
        while not release:
            pass
        return np.zeros(len(texts)), None

    s = InServerScorer(COL, slow, lambda ids: "x", overlap=True)
    tracker = RequestTracker(score_column=COL)
    add(tracker, s, Prompted("a", [1]))
    s.start_scoring()
    add(tracker, s, Prompted("b", [1]))
    s.start_scoring()  # a batch is running: b waits for the next one
    assert len(s.pending) == 1 and s.score_pending()[0] == 0
    release.append(True)
    s.in_flight[0].result(timeout=10)
    assert s.score_pending()[0] == 1
    s.start_scoring()
    s.in_flight[0].result(timeout=10)
    assert s.score_pending()[0] == 1
    s.close()


def test_a_predictor_with_server_mode_is_refused(tmp_path, capsys):
    from ltrsched.cli import main

    rc = main(["live", "replay", "--trace", str(tmp_path / "t.parquet"), "--server",
               "http://127.0.0.1:9", "--predictor", str(tmp_path), "--out", str(tmp_path / "o")])
    assert rc == 2 and "--predictor is for the in-process engine" in capsys.readouterr().err


def test_a_distributional_fallback_is_served_first_by_gittins_too():
    from policies.lengthdist import NUM_BINS, dist_columns

    def predict(texts):
        if "bad" in texts:
            raise RuntimeError("broke")
        return np.zeros(len(texts)), np.tile(np.full(NUM_BINS, 1.0 / NUM_BINS), (len(texts), 1))

    s = InServerScorer(COL, predict, lambda ids: "bad" if ids == [2] else "ok",
                       dist_columns=dist_columns("p"))
    tracker = RequestTracker(score_column=COL)
    add(tracker, s, Prompted("ok", [1]))
    s.score_pending()
    add(tracker, s, Prompted("bad", [2]))
    s.score_pending()
    keys, _ = tracker.rank_keys(make_policy("gittins"), 0.0)  # no PolicyError: both keyed
    assert sorted(keys, key=keys.get) == ["bad", "ok"]
