import numpy as np
import pytest

from predictor.metrics import ranking_metrics


def test_perfect_reversed_and_tied_orders():
    lengths = np.array([10, 20, 30, 40])
    best = ranking_metrics(-lengths, lengths)
    assert best["kendall_tau"] == pytest.approx(1.0) and best["spearman"] == pytest.approx(1.0)
    assert best["pairs_right"] == 1.0
    worst = ranking_metrics(lengths, lengths)
    assert worst["kendall_tau"] == pytest.approx(-1.0) and worst["pairs_wrong"] == 1.0
    flat = ranking_metrics(np.zeros(4), lengths)
    assert flat["pairs_tied"] == 1.0


def test_pair_shares_count_only_pairs_of_different_length():
    lengths = np.array([10, 10, 20])
    m = ranking_metrics(np.array([1.0, 0.0, 0.5]), lengths)
    # pairs with different length: (0,2) right, (1,2) wrong
    assert m["pairs_right"] == pytest.approx(0.5) and m["pairs_wrong"] == pytest.approx(0.5)
