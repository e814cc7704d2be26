"""One named random stream per purpose, all derived from --seed.

Separate streams keep, say, the arrival times unchanged when shuffling is turned on.
"""

from __future__ import annotations

import numpy as np

STREAMS = {"arrivals": 1, "selection": 2, "lengths": 3}


def rng_for(seed: int, stream: str) -> np.random.Generator:
    """The generator for `stream` ("arrivals", "selection" or "lengths") under `seed`."""
    return np.random.default_rng([seed, STREAMS[stream]])
