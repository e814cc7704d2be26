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
