import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from predictor.errors import PredictorError  # noqa: E402
from predictor.losses import (  # noqa: E402
    Objective,
    bucket_of,
    fit_buckets,
    listmle,
    pairwise,
    parse_loss,
)


def test_listmle_matches_hand_computed_value():
    # Lengths rank item 1 first (label 10), then item 2 (20), then item 0 (30):
    # -log P = [log(e^2+e^3+e^1) - 2] + [log(e^3+e^1) - 3] + [log(e^1) - 1]
    scores = torch.tensor([1.0, 2.0, 3.0])
    labels = torch.tensor([30, 10, 20])
    expected = (math.log(math.e**2 + math.e**3 + math.e) - 2) + (math.log(math.e**3 + math.e) - 3)
    assert expected == pytest.approx(1.5345340, abs=1e-6)
    assert listmle(scores, labels).item() == pytest.approx(expected, abs=1e-5)


def test_listmle_is_lowest_for_the_true_order_and_ties_do_not_matter():
    labels = torch.tensor([0, 1, 2, 3])
    good = listmle(torch.tensor([4.0, 3.0, 2.0, 1.0]), labels)
    bad = listmle(torch.tensor([1.0, 2.0, 3.0, 4.0]), labels)
    assert good < bad
    # Two tied items with equal scores: any order of the tie gives the same loss.
    tied = torch.tensor([0, 0, 1])
    values = {
        round(
            listmle(torch.tensor([2.0, 2.0, 0.0]), tied, torch.Generator().manual_seed(s)).item(), 6
        )
        for s in range(5)
    }
    assert len(values) == 1


def test_pairwise_hinge():
    scores = torch.tensor([2.0, 0.5, 0.0])
    labels = torch.tensor([0, 1, 1])  # item 0 shorter than items 1 and 2; 1 and 2 tie
    # pairs (0,1): max(0, 1 - 1.5) = 0; (0,2): max(0, 1 - 2) = 0 -> 0
    assert pairwise(scores, labels, margin=1.0).item() == 0.0
    assert pairwise(scores, labels, margin=2.0).item() == pytest.approx((0.5 + 0.0) / 2)


def test_parse_loss_specs():
    assert parse_loss("listmle").kind == "listmle"
    assert parse_loss("pairwise:margin=0.5").margin == 0.5
    spec = parse_loss("classify:buckets=10")
    assert (spec.buckets, spec.percentile, spec.num_outputs) == (10, False, 10)
    assert parse_loss("classify:buckets=4,percentile").percentile
    for bad in (
        "nope",
        "classify",
        "classify:buckets=1",
        "classify:buckets=x",
        "listmle:foo=1",
        "classify:buckets=4,width=10,percentile",
    ):
        with pytest.raises(PredictorError):
            parse_loss(bad)


def test_buckets_equal_width_and_percentile():
    lengths = np.array([1, 5, 10, 40, 100])
    spec = fit_buckets(parse_loss("classify:buckets=10"), lengths)
    assert spec.width == 10 and spec.edges[:2] == (10.0, 20.0)
    assert bucket_of(spec, np.array([0, 9, 10, 95, 5000])).tolist() == [0, 0, 1, 9, 9]
    paper = fit_buckets(parse_loss("classify:buckets=10,width=820"), lengths)
    assert bucket_of(paper, np.array([819, 820])).tolist() == [0, 1]
    pct = fit_buckets(parse_loss("classify:buckets=2,percentile"), lengths)
    assert bucket_of(pct, lengths).tolist() == [0, 0, 1, 1, 1]


def test_scores_point_the_paper_way():
    """Higher score = shorter, for every objective."""
    out = torch.tensor([[0.0, 5.0], [5.0, 0.0]])  # row 1 puts its mass on bucket 0 (short)
    spec = fit_buckets(parse_loss("classify:buckets=2,width=100"), np.array([1, 200]))
    s = Objective(spec).score(out)
    assert s[1] > s[0]
    mse = Objective(parse_loss("mse")).score(torch.tensor([[math.log(10)], [math.log(1000)]]))
    assert mse[0] > mse[1]
