"""Diversity between the images of one sample: perceptual-hash (pHash) Hamming distance.

pHash: the sign of the low-frequency 8x8 DCT block of a 32x32 grey thumbnail against its
median. Near-duplicates differ in a few of the 64 bits; unrelated images in ~32. A
storyboard whose panels all look alike, or a multi-view sample whose views barely move,
has low diversity.
"""

from __future__ import annotations

import cv2
import numpy as np

from datagen.portable import portable_cv
from datagen.schema import Sample
from datagen.scoring.base import Scorer, ScoreResult, sample_images


def phash(img: np.ndarray) -> np.ndarray:
    """64 bits as a bool array (kept as bits so distances are exact and portable)."""
    with portable_cv():  # OpenCV's SIMD DCT kernels differ in the last bits per CPU
        grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
        small = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
        low = cv2.dct(small)[:8, :8].ravel()
    # Drop the DC term from the median: it only carries mean brightness.
    return low > np.median(low[1:])


def phash_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised Hamming distance of two images' pHashes, in [0, 1]."""
    return float(np.count_nonzero(phash(a) != phash(b)) / 64.0)


class DiversityScorer(Scorer):
    name = "diversity"
    version = "1"
    batch_size = 64

    def __init__(self, which: str = "outputs"):
        super().__init__()
        self.which = which

    def score_batch(self, samples: list[Sample]) -> list[ScoreResult]:
        out: list[ScoreResult] = []
        for s in samples:
            hashes = [phash(im) for im in sample_images(s, self.which)]
            if len(hashes) < 2:
                # A single output is measured against the reference instead.
                hashes = [phash(im) for im in sample_images(s, "all")]
            if len(hashes) < 2:
                out.append(self.reject("too_few_views", "need 2 images to measure diversity", s))
                continue
            dists = [
                np.count_nonzero(hashes[i] != hashes[j]) / 64.0
                for i in range(len(hashes))
                for j in range(i + 1, len(hashes))
            ]
            out.append({"diversity": float(np.mean(dists)), "diversity_min": float(np.min(dists))})
        return out
