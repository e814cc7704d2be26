"""Oracle length distributions with noisy parameters: what a distribution-aware policy
achieves with a predictor of known quality, apart from the predictor we happen to have.

Per request, a log-normal over output length, discretised onto the shared bins
(dist_math.lognormal_on_bins): ln(length) ~ N(mu, sigma^2) with
- mu = ln(output_tokens) + noise * eps, sigma = --sigma: centred on the true length, or
- mu = len_mu + noise * eps, sigma = len_sigma, when the trace has the columns len_mu and
  len_sigma (the natural-log parameters its synthetic lengths were drawn from): the true
  family with noisy parameters;
eps ~ N(0, 1) per request from one seeded generator, in trace row order. noise = 0 is
a perfect predictor of the median (or of the generating distribution). With max_tokens
(a synthetic source's cap: lmsys-like redraws lengths until they are <= 2048 and says so
in the trace's metadata), the log-normal is cut there, as the generator's draws were.

It writes dist_<name>_00..NN and score_<name> = -median (= -exp(mu)), so that
`ltr:col=score_<name>` ranks by the same predictor's point estimate.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

from policies.base import PolicyError
from policies.dist_math import lognormal_on_bins
from policies.lengthdist import dist_columns
from traces.errors import shown
from traces.schema import SCORE_PREFIX

DEFAULT_SIGMA = 0.5
TRUE_MU, TRUE_SIGMA = "len_mu", "len_sigma"
_NAME = re.compile(r"[A-Za-z0-9]+(_[A-Za-z0-9]+)*\Z")


def oracle_dist(
    df: pd.DataFrame,
    name: str = "oracle",
    sigma: float | None = None,
    noise: float = 0.0,
    seed: int = 0,
    max_tokens: int | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The trace with dist_<name>_NN and score_<name> added (replaced if present), and a
    record of how they were made. sigma None: the trace's len_sigma where it has one,
    else DEFAULT_SIGMA; a given sigma overrides len_sigma."""
    if not _NAME.match(name):
        raise PolicyError(f"--name: {name!r} must be letters and digits, '_' between them")
    if not math.isfinite(noise) or noise < 0:
        raise PolicyError(f"--noise: must be a number >= 0, got {noise}")
    if sigma is not None and not (math.isfinite(sigma) and sigma > 0):
        raise PolicyError(f"--sigma: must be a number > 0, got {sigma}")
    if max_tokens is not None and max_tokens < 1:
        raise PolicyError(f"--max-tokens: must be >= 1, got {max_tokens}")
    n = len(df)
    eps = np.random.default_rng(seed).standard_normal(n)
    has = [c for c in (TRUE_MU, TRUE_SIGMA) if c in df.columns]
    if len(has) == 1:
        missing = TRUE_SIGMA if has[0] == TRUE_MU else TRUE_MU
        raise PolicyError(f"the trace has {has[0]} but not {missing}: give both or neither")
    if has:
        mu0 = _column(df, TRUE_MU, positive=False)
        family = "true (len_mu, len_sigma)"
        spread = _column(df, TRUE_SIGMA, positive=True) if sigma is None else sigma
    else:
        mu0 = np.log(df["output_tokens"].to_numpy(np.float64))
        family = "centred on output_tokens"
        spread = DEFAULT_SIGMA if sigma is None else sigma
    mu = mu0 + noise * eps
    probs = lognormal_on_bins(mu, spread, max_tokens)
    added = pd.DataFrame(probs, columns=dist_columns(name), index=df.index)
    added[SCORE_PREFIX + name] = -np.exp(mu)
    out = pd.concat([df.drop(columns=[c for c in added.columns if c in df.columns]), added], axis=1)
    info = {
        "kind": "oracle log-normal",
        "family": family,
        "sigma": "len_sigma" if has and sigma is None else float(spread),
        "noise": float(noise),
        "seed": int(seed),
        "max_tokens": max_tokens,
    }
    return out, info


def _column(df: pd.DataFrame, col: str, positive: bool) -> np.ndarray:
    values = pd.to_numeric(df[col], errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values) | ((values <= 0) if positive else False)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        need = "a number > 0" if positive else "a finite number"
        raise PolicyError(f"column {col}: row {row} must be {need}, got {shown(df[col].iloc[row])}")
    return values


def output_cap(meta: dict[str, Any]) -> int | None:
    """The output-length cap a synthetic source records in a trace's metadata
    (`<source>.output_cap_tokens`, e.g. lmsys_like), or None."""
    for value in meta.values():
        if isinstance(value, dict) and isinstance(value.get("output_cap_tokens"), int):
            return value["output_cap_tokens"]
    return None
