"""Per-sample random streams.

Every random choice a generator makes comes from `sample_rng(seed, index)`: the stream
depends only on the dataset seed and the sample's position in the plan, never on which
worker runs it or in what order, so 1 worker and 8 give the same bytes.
"""

from __future__ import annotations

import numpy as np

_MASK = (1 << 63) - 1


def sample_rng(seed: int, index: int, *salt: int) -> np.random.Generator:
    """PCG64 stream keyed by (seed, index[, salt...]); salts give independent sub-streams."""
    key = [int(seed) & _MASK, int(index) & _MASK, *(int(s) & _MASK for s in salt)]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(key)))
