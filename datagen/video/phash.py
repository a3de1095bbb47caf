"""Near-duplicate frame pairs by 64-bit pHash (the one in datagen.scoring.diversity).

Re-encoding, mild blur and small brightness changes move a few bits; different content
moves about half of them.
"""

from __future__ import annotations

import numpy as np

from datagen.scoring import diversity


def phash(img: np.ndarray) -> int:
    """The shared pHash (datagen.scoring.diversity), packed into an int for cheap XOR distances."""
    bits = diversity.phash(img[:, :, :3] if img.ndim == 3 else img)
    return int.from_bytes(np.packbits(bits, bitorder="little").tobytes(), "little")


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


class PairIndex:
    """Pairs seen so far; a pair is a near-duplicate when both of its frames are."""

    def __init__(self, max_distance: int = 6):
        self.max_distance = max_distance
        self._pairs: list[tuple[int, int]] = []

    def find(self, hash_a: int, hash_b: int) -> int | None:
        """Index of an earlier near-identical pair, or None."""
        for k, (a, b) in enumerate(self._pairs):
            if hamming(a, hash_a) <= self.max_distance and hamming(b, hash_b) <= self.max_distance:
                return k
        return None

    def add(self, hash_a: int, hash_b: int) -> None:
        self._pairs.append((hash_a, hash_b))
