"""64-bit DCT perceptual hash and a small near-duplicate index for frame pairs.

pHash: grey 32x32 -> DCT -> the 8x8 lowest frequencies (DC excluded from the median) ->
one bit per coefficient above the median. Re-encoding, mild blur and small brightness
changes move a few bits; different content moves about half of them.
"""

from __future__ import annotations

import cv2
import numpy as np


def phash(img: np.ndarray) -> int:
    grey = img if img.ndim == 2 else cv2.cvtColor(img[:, :, :3], cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8].ravel()
    bits = low > np.median(low[1:])
    return int(sum(1 << i for i, b in enumerate(bits) if b))


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

    def __len__(self) -> int:
        return len(self._pairs)
