"""Per-image quality without weights: sharpness (variance of the Laplacian) and exposure.

Both are measured at a fixed working size so a 4K frame and its 512px thumbnail score
alike; a sample scores as its weakest image (one blurred panel spoils a storyboard).
"""

from __future__ import annotations

import cv2
import numpy as np

from datagen.portable import portable_cv
from datagen.schema import Sample, quantize
from datagen.scoring.base import Scorer, ScoreResult, sample_images

WORK_SIDE = 512


def _grey(img: np.ndarray, side: int = WORK_SIDE) -> np.ndarray:
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    scale = side / max(grey.shape[:2])
    if scale < 1.0:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return grey


def sharpness(img: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image (bigger = sharper; < ~50 is visibly soft)."""
    with portable_cv():
        lap = cv2.Laplacian(_grey(img), cv2.CV_64F)
    return quantize(lap.var())  # stored precision: keyframes are chosen by comparing it


def exposure(img: np.ndarray) -> dict[str, float]:
    """Clipped fraction, mean luminance, and a [0, 1] exposure score (1 = well exposed).

    The score is (1 - clipped fraction) times a mean-luminance factor that is 1 for a mean
    in [0.2, 0.8] and falls linearly to 0 at 0.05 / 0.95: night shots keep their score,
    crushed or blown-out frames lose it.
    """
    with portable_cv():
        grey = _grey(img)
    clipped = quantize(np.mean((grey <= 2) | (grey >= 253)))
    mean = quantize(grey.mean() / 255.0)
    level = float(np.clip((0.45 - abs(mean - 0.5)) / 0.15, 0.0, 1.0))
    return {"clipped": clipped, "mean": mean, "score": quantize((1.0 - clipped) * level)}


class _PerImageScorer(Scorer):
    """Measures every image of a sample (`which`: inputs, outputs or all) and summarises them."""

    batch_size = 32

    def __init__(self, which: str = "all"):
        super().__init__()
        self.which = which

    def measure(self, img: np.ndarray):
        raise NotImplementedError

    def summarise(self, values: list) -> dict[str, float]:
        raise NotImplementedError

    def score_batch(self, samples: list[Sample]) -> list[ScoreResult]:
        out: list[ScoreResult] = []
        for s in samples:
            values = [self.measure(im) for im in sample_images(s, self.which)]
            if not values:
                out.append(self.reject("no_images", f"sample has no {self.which} images", s))
                continue
            out.append(self.summarise(values))
        return out


class SharpnessScorer(_PerImageScorer):
    name = "sharpness"
    version = "1"

    def measure(self, img: np.ndarray) -> float:
        return sharpness(img)

    def summarise(self, values: list[float]) -> dict[str, float]:
        return {"sharpness": min(values), "sharpness_mean": float(np.mean(values))}


class ExposureScorer(_PerImageScorer):
    name = "exposure"
    version = "1"

    def measure(self, img: np.ndarray) -> dict[str, float]:
        return exposure(img)

    def summarise(self, stats: list[dict[str, float]]) -> dict[str, float]:
        return {"exposure": min(st["score"] for st in stats), "exposure_clipped": max(st["clipped"] for st in stats)}
