"""How well a score orders requests by output length (higher score = shorter), and how
well a predicted distribution over the length bins of policies/lengthdist.py fits the
true lengths.

Distribution figures, per record, averaged (p: the predicted bin probabilities; F_k =
p_0 + ... + p_k, the CDF at the upper end of bin k; b: the true length's bin; e_k:
BIN_EDGES, bin k = [e_k, e_{k+1}) tokens; w_k = e_{k+1} - e_k):
- log_lik: ln p_b (natural log; p_b floored at 1e-12 so one impossible record cannot
  make the mean -inf). log_density: ln(p_b / w_b), the log of the piecewise-uniform
  density per token, comparable across bins of different width.
- crps_tokens: sum_k (F_k - 1[b <= k])^2 * w_k, the continuous ranked probability score
  in tokens of the forecast that puts each bin's mass at its lower edge, against the
  true bin's lower edge. 0 for all mass on the true bin; proper; the last bin adds 0.
- coverage_50, coverage_90: share of records whose true bin lies in the central interval,
  read off the CDF at bin resolution: for level L and a = (1 - L) / 2, from the first bin
  with F_k >= a to the first bin with F_k >= 1 - a, both whole. Such an interval holds
  at least L of the predicted mass, so a calibrated forecast covers more than L: compare
  coverage with mass_50, mass_90, the mean predicted probability of the same intervals
  (equal for a calibrated forecast). width_50_tokens, width_90_tokens: the intervals'
  mean widths, e_{hi+1} - e_lo (sharpness).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

from policies.lengthdist import BIN_EDGES, NUM_BINS, bin_of

MAX_PAIR_ROWS = 20_000  # pair shares are exact up to this many rows, sampled beyond


def ranking_metrics(
    score: np.ndarray, output_tokens: np.ndarray, seed: int = 0
) -> dict[str, float]:
    """Kendall's tau-b and Spearman's rho between score and -output_tokens (1 = perfect),
    and, over pairs whose true lengths differ, the shares the score orders right, wrong,
    or ties."""
    score = np.asarray(score, dtype=np.float64)
    length = np.asarray(output_tokens, dtype=np.float64)
    with warnings.catch_warnings():  # a constant score has no correlation: nan, no warning
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        tau = stats.kendalltau(score, -length).statistic
        rho = stats.spearmanr(score, -length).statistic
    right, wrong, tied = _pair_shares(score, length, seed)
    return {
        "n": int(len(score)),
        "kendall_tau": float(tau),
        "spearman": float(rho),
        "pairs_right": right,
        "pairs_wrong": wrong,
        "pairs_tied": tied,
    }


def _pair_shares(score: np.ndarray, length: np.ndarray, seed: int) -> tuple[float, ...]:
    if len(score) > MAX_PAIR_ROWS:
        keep = np.random.default_rng(seed).choice(len(score), MAX_PAIR_ROWS, replace=False)
        score, length = score[keep], length[keep]
    right = wrong = tied = 0
    for start in range(0, len(score), 1024):
        s, y = score[start : start + 1024, None], length[start : start + 1024, None]
        shorter = y < length[None, :]  # row i is truly shorter than column j
        ds = s - score[None, :]
        right += int((shorter & (ds > 0)).sum())
        wrong += int((shorter & (ds < 0)).sum())
        tied += int((shorter & (ds == 0)).sum())
    total = right + wrong + tied
    if total == 0:
        return (float("nan"),) * 3
    return right / total, wrong / total, tied / total


LOG_LIK_FLOOR = 1e-12
INTERVAL_LEVELS = (0.5, 0.9)


def central_interval_bins(probs: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """First and last bin (inclusive) of each distribution's central `level` interval."""
    cdf = np.cumsum(np.atleast_2d(probs), axis=1)
    a = (1.0 - level) / 2
    tol = 1e-9  # a CDF summed in floating point may fall just short of a level it meets
    lo = np.minimum((cdf < a - tol).sum(axis=1), NUM_BINS - 1)
    hi = np.minimum((cdf < 1.0 - a - tol).sum(axis=1), NUM_BINS - 1)
    return lo, hi


def distribution_metrics(probs: np.ndarray, output_tokens: np.ndarray) -> dict[str, float]:
    """Calibration and proper scores of bin distributions (rows of probs) against the true
    lengths, as defined in this module's docstring."""
    probs = np.atleast_2d(np.asarray(probs, dtype=np.float64))
    b = bin_of(np.asarray(output_tokens, dtype=np.int64))
    rows = np.arange(len(b))
    widths = np.diff(BIN_EDGES).astype(np.float64)
    log_lik = np.log(np.maximum(probs[rows, b], LOG_LIK_FLOOR))
    cdf = np.cumsum(probs, axis=1)
    below = np.arange(NUM_BINS)[None, :] >= b[:, None]  # 1[b <= k]
    crps = ((cdf - below) ** 2 * widths).sum(axis=1)
    out = {
        "n": int(len(b)),
        "log_lik": float(log_lik.mean()),
        "log_density": float((log_lik - np.log(widths[b])).mean()),
        "crps_tokens": float(crps.mean()),
    }
    for level in INTERVAL_LEVELS:
        lo, hi = central_interval_bins(probs, level)
        pct = round(100 * level)
        out[f"coverage_{pct}"] = float(((lo <= b) & (b <= hi)).mean())
        mass = cdf[rows, hi] - np.where(lo > 0, cdf[rows, lo - 1], 0.0)
        out[f"mass_{pct}"] = float(mass.mean())
        out[f"width_{pct}_tokens"] = float((BIN_EDGES[hi + 1] - BIN_EDGES[lo]).mean())
    return out
