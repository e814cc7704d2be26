"""The Pareto front of points where both coordinates are costs (lower is better)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pareto_front(x: Sequence[float], y: Sequence[float]) -> np.ndarray:
    """Indices of the points no other point beats on both x and y, sorted by x.

    A point is dominated if another is <= on both and < on one; NaN points never count.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    idx = [i for i in np.lexsort((y, x)) if np.isfinite(x[i]) and np.isfinite(y[i])]
    front, best_y = [], np.inf
    for i in idx:  # by x, then y: a point is on the front iff its y beats all before it
        if y[i] < best_y:
            front.append(i)
            best_y = y[i]
    return np.array(front, dtype=int)
