"""Output-length distributions as requests carry them: probabilities over fixed bins.

One discretisation for every producer (a distributional predictor, an oracle with noisy
parameters) and every consumer (the gittins and serpt policies, `predictor eval`):
NUM_BINS bins of output length in tokens, bin k covering [BIN_EDGES[k], BIN_EDGES[k+1])
and standing for its support point SUPPORT_TOKENS[k] (the integer nearest the bin's
geometric mean; strictly increasing). A request's distribution is NUM_BINS
non-negative floats summing to 1, carried as the features dist_<name>_00 ...
dist_<name>_<NUM_BINS-1> (trace columns of those names), so that they ride through the
simulator and live vLLM like any score.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

DIST_PREFIX = "dist_"
MAX_TOKENS = 32768  # upper edge of the last bin; longer outputs fall in the last bin
# One bin per length up to 8 tokens, then 32 log-spaced bins (width ratio about 1.3).
BIN_EDGES = np.unique(
    np.concatenate([np.arange(1, 8), np.round(np.geomspace(8, MAX_TOKENS, 33))])
).astype(np.int64)
NUM_BINS = len(BIN_EDGES) - 1
SUPPORT_TOKENS = np.maximum(
    BIN_EDGES[:-1], np.round(np.sqrt(BIN_EDGES[:-1] * (BIN_EDGES[1:] - 1)))
).astype(np.int64)


def dist_columns(name: str) -> list[str]:
    """The feature / trace column names of distribution `name`, in bin order."""
    return [f"{DIST_PREFIX}{name}_{k:02d}" for k in range(NUM_BINS)]


def bin_of(tokens: np.ndarray | int) -> np.ndarray:
    """The bin index of each output length (lengths past MAX_TOKENS go in the last)."""
    idx = np.searchsorted(BIN_EDGES, np.asarray(tokens), side="right") - 1
    return np.clip(idx, 0, NUM_BINS - 1)


def dist_names(features: Mapping[str, float] | list[str]) -> list[str]:
    """Names of the complete distributions among feature (or column) names."""
    keys = set(features)
    names = {k[len(DIST_PREFIX):].rsplit("_", 1)[0] for k in keys if k.startswith(DIST_PREFIX)}
    return sorted(n for n in names if all(c in keys for c in dist_columns(n)))


def read_dist(features: Mapping[str, float], name: str) -> np.ndarray:
    """The probability vector of distribution `name` from a request's features,
    normalised (KeyError when a bin is missing)."""
    p = np.array([features[c] for c in dist_columns(name)], dtype=np.float64)
    p = np.where(np.isfinite(p) & (p > 0), p, 0.0)
    total = p.sum()
    return p / total if total > 0 else np.full(NUM_BINS, 1.0 / NUM_BINS)


def histogram(tokens: np.ndarray) -> np.ndarray:
    """Counts of output lengths per bin (int64, NUM_BINS long)."""
    return np.bincount(bin_of(np.asarray(tokens, dtype=np.int64)), minlength=NUM_BINS)


def quantile_tokens(probs: np.ndarray, q: float) -> np.ndarray:
    """The q-quantile in tokens of each distribution (rows of probs, [n, NUM_BINS]), read
    off a CDF that is linear in log(tokens) inside each bin: continuous in the probabilities,
    so that distributions that differ only inside a bin still rank apart."""
    probs = np.atleast_2d(np.asarray(probs, dtype=np.float64))
    cdf = np.cumsum(probs, axis=1)
    k = np.minimum((cdf < q).sum(axis=1), NUM_BINS - 1)  # first bin whose CDF reaches q
    rows = np.arange(len(probs))
    below = cdf[rows, k] - probs[rows, k]
    mass = probs[rows, k]
    t = np.clip(np.divide(q - below, mass, out=np.zeros_like(mass), where=mass > 0), 0.0, 1.0)
    lo, hi = np.log(BIN_EDGES[k]), np.log(BIN_EDGES[k + 1])
    return np.exp(lo + t * (hi - lo))


def from_counts(counts: np.ndarray, pseudo_count: float = 0.5) -> np.ndarray:
    """The distribution of a histogram of counts, each bin given pseudo_count more (0.5:
    the Krichevsky-Trofimov estimate), so that no bin has probability 0."""
    counts = np.asarray(counts, dtype=np.float64) + pseudo_count
    return counts / counts.sum()
