"""RequestViews of a whole trace, built the same way for every engine.

The simulator and live mode must hand a policy identical views (same ids, same
features), or seeded policies (approx-oracle) and ties would differ between them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from policies.base import RequestView
from policies.lengthdist import DIST_PREFIX
from traces.schema import PRED_TOKENS_PREFIX, SCORE_PREFIX


def in_policy_order(df: pd.DataFrame) -> pd.DataFrame:
    """The trace sorted by (arrival_s, request_id); a request's policy id is its row here."""
    return df.sort_values(["arrival_s", "request_id"], kind="stable").reset_index(drop=True)


def feature_columns(df: pd.DataFrame) -> list[str]:
    """The predictor columns a policy may read (score_*, pred_tokens_*, dist_*)."""
    prefixes = (SCORE_PREFIX, PRED_TOKENS_PREFIX, DIST_PREFIX)
    return [c for c in df.columns if c.startswith(prefixes)]


def views_from_trace(df: pd.DataFrame) -> list[RequestView]:
    """One view per request of the trace in policy order; request_id = row there."""
    df = in_policy_order(df)
    arrival = df["arrival_s"].to_numpy(np.float64)
    prompt = df["prompt_tokens"].to_numpy(np.int64)
    output = df["output_tokens"].to_numpy(np.int64)
    feats = {c: df[c].to_numpy(np.float64) for c in feature_columns(df)}
    return [
        RequestView(
            request_id=i,
            arrival_s=float(arrival[i]),
            prompt_tokens=int(prompt[i]),
            output_tokens=int(output[i]),
            waiting_since_s=float(arrival[i]),
            features={c: float(a[i]) for c, a in feats.items()},
        )
        for i in range(len(df))
    ]
