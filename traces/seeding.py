"""One named random stream per purpose, all derived from --seed.

Separate streams keep, say, the arrival times unchanged when shuffling is turned on.
"""

from __future__ import annotations

import numpy as np

STREAMS = {
    "arrivals": 1,
    "selection": 2,
    "lengths": 3,
    "lmsys-like": 4,
    "think": 5,
    "shared-prefix": 6,
}


def rng_for(seed: int, stream: str) -> np.random.Generator:
    """The generator for `stream` (a key of STREAMS) under `seed`."""
    return np.random.default_rng([seed, STREAMS[stream]])


def rng_for_record(seed: int, stream: str, index: int) -> np.random.Generator:
    """The generator of record `index` of a generated source: the same whatever else is built."""
    return np.random.default_rng([seed, STREAMS[stream], index])
