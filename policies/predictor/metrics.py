"""How well a score orders requests by output length (higher score = shorter)."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

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
