"""ltr: order by a predictor's score column, higher = shorter."""

from __future__ import annotations

import pytest
from policy_engine import order, view

from policies import PolicyError, make_policy


def scored(rid, score, arrival=0.0, **more):
    return view(rid, arrival, features={"score_opt": score, **more})


def test_highest_score_first_fcfs_on_ties():
    views = [scored(0, -2.0), scored(1, 3.0, 1.0), scored(2, 0.5), scored(3, 3.0, 0.5)]
    p = make_policy("ltr")
    p.prepare(views)
    assert order(p, views) == [3, 1, 2, 0]


def test_default_column_is_the_only_score_column_and_describe_names_it():
    views = [scored(0, 1.0, pred_tokens_x=5.0)]
    p = make_policy("ltr")
    p.prepare(views)
    assert p.describe() == "ltr:col=score_opt"
    assert p.requires == ("features:score_opt",)


def test_several_score_columns_need_col():
    views = [view(0, features={"score_a": 1.0, "score_b": 2.0})]
    with pytest.raises(PolicyError, match="2 score columns: score_a, score_b"):
        make_policy("ltr").prepare(views)
    p = make_policy("ltr:col=score_b")
    p.prepare(views)
    assert p.key(views[0], 0.0) == -2.0


def test_missing_column_fails_at_prepare_naming_it():
    views = [scored(0, 1.0), view(1, features={})]
    with pytest.raises(PolicyError, match="'score_zzz' missing .*score columns: score_opt"):
        make_policy("ltr:col=score_zzz").prepare(views)
    with pytest.raises(PolicyError, match="'score_opt' missing \\(request 1\\)"):
        make_policy("ltr").prepare(views)


def test_no_score_column_at_all():
    with pytest.raises(PolicyError, match="0 score columns: none"):
        make_policy("ltr").prepare([view(0)])


def test_nan_score_is_an_error():
    with pytest.raises(PolicyError, match="NaN"):
        make_policy("ltr").prepare([scored(0, float("nan"))])
