"""classify: length buckets, FCFS within a bucket."""

from __future__ import annotations

import pytest
from policy_engine import order, view

from policies import PolicyError, make_policy


def test_100_token_buckets_fcfs_within_a_bucket():
    views = [
        view(0, 0.0, output=150),
        view(1, 1.0, output=50),
        view(2, 2.0, output=120),
        view(3, 3.0, output=99),
        view(4, 4.0, output=100),
    ]
    p = make_policy("classify")
    assert p.width == 100.0
    assert [p.bucket(r) for r in views] == [1, 0, 1, 0, 1]
    assert order(p, views) == [1, 3, 0, 2, 4]


def test_paper_ten_classes_of_820_tokens_cap_the_last_bucket():
    p = make_policy("classify:buckets=10,width=820")
    views = [view(0, 0.0, output=20000), view(1, 1.0, output=8200), view(2, 2.0, output=819)]
    assert [p.bucket(r) for r in views] == [9, 9, 0]
    assert order(p, views) == [2, 0, 1]


def test_percentile_edges_from_prepared_lengths():
    views = [view(i, float(i), output=i + 1) for i in range(100)]  # lengths 1..100
    p = make_policy("classify:percentile=true,buckets=4")
    with pytest.raises(PolicyError, match="needs prepare"):
        p.key(views[0], 0.0)
    p.prepare(views)
    counts = [0] * 4
    for r in views:
        counts[p.bucket(r)] += 1
    assert counts == [25, 25, 25, 25]
    # later arrivals in a lower bucket go first; same bucket stays FCFS
    assert order(p, [views[99], views[60], views[3], views[0]]) == [0, 3, 60, 99]


def test_predicted_length_column():
    views = [
        view(0, 0.0, output=10, features={"pred_tokens_m": 900.0}),
        view(1, 1.0, output=900, features={"pred_tokens_m": 10.0}),
    ]
    p = make_policy("classify:col=pred_tokens_m")
    p.prepare(views)
    assert order(p, views) == [1, 0]
    assert p.requires == ("features:pred_tokens_m",)
    assert make_policy("classify").requires == ("output_tokens",)
    assert "col=output_tokens" in make_policy("classify").describe()  # the ideal classifier


def test_missing_predicted_column():
    with pytest.raises(PolicyError, match="'pred_tokens_m' missing for 0"):
        make_policy("classify:col=pred_tokens_m").prepare([view(0)])


def test_buckets_wider_than_nearly_every_answer_say_so():
    # 19 chat-length answers and one long one: 95% fall in the first 820-token class.
    views = [view(i, float(i), output=50 + 30 * i) for i in range(19)]
    views.append(view(19, 19.0, output=3000))
    p = make_policy("classify:buckets=10,width=820")
    assert p.notes() == []  # nothing known before prepare
    p.prepare(views)
    assert p.notes() == [
        "classify:buckets=10,width=820: 95% of the trace's requests fall in bucket 0 "
        "(0-820 tokens), so it orders them almost as fcfs does"
    ]
    spread = make_policy("classify")  # 100-token buckets: answers spread over 6 classes
    spread.prepare(views)
    assert spread.notes() == []
    last = make_policy("classify:buckets=2,width=10")  # every answer past the last edge
    last.prepare(views)
    assert last.notes() == [
        "classify:buckets=2,width=10: 100% of the trace's requests fall in bucket 1 "
        "(10+ tokens), so it orders them almost as fcfs does"
    ]


def test_starvation_prevention_passes_the_wrapped_policys_notes_on():
    views = [view(i, float(i), output=50 + 30 * i) for i in range(19)]
    wrapped = make_policy("classify:buckets=10,width=820,starvation=100")
    wrapped.prepare(views)
    assert len(wrapped.notes()) == 1 and "bucket 0" in wrapped.notes()[0]
