"""Identity and colour consistency between panels, without weights.

`colour_similarity`: histogram intersection of the Lab chroma (a*, b*) distribution plus a
lightness histogram - the same outfit, fur or paint keeps its colours across shots even
when pose and framing change. `structure_similarity`: cosine of HOG descriptors of the
subject crops, which tells a face from a face-sized patch of wall but is NOT a face
recogniser (it cannot tell two people apart reliably); the CLIP and VLM scorers are the
model-backed identity measures. `identity_similarity` is their mean.

Crops: when a sample carries a `Region` named "subject..." or "face..." for an image, that
box is used; otherwise the whole image.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from skimage.feature import hog

from datagen.portable import fsum_dot, portable_cv
from datagen.schema import Sample, quantize
from datagen.scoring.base import Scorer, ScoreResult

HOG_SIDE = 64


def colour_similarity(a: np.ndarray, b: np.ndarray, bins: int = 16) -> float:
    """Histogram intersection in [0, 1] of Lab chroma (2-D) and lightness (1-D), averaged."""
    with portable_cv():
        ha, la = _colour_hists(a, bins)
        hb, lb = _colour_hists(b, bins)
    # At the stored precision: storyboards keep or drop a panel by comparing it to a threshold.
    chroma, light = np.minimum(ha, hb).astype(np.float64).sum(), np.minimum(la, lb).astype(np.float64).sum()
    return quantize(0.5 * chroma + 0.5 * light)


def _colour_hists(img: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    small = _fit(img, 128)
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB)
    chroma = cv2.calcHist([lab], [1, 2], None, [bins, bins], [0, 256, 0, 256]).ravel()
    light = cv2.calcHist([lab], [0], None, [bins], [0, 256]).ravel()
    return chroma / max(chroma.sum(), 1.0), light / max(light.sum(), 1.0)


def structure_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of HOG descriptors of both crops at 64x64, in [-1, 1]; the better of
    `b` and its mirror image, since a subject seen mirrored in another shot is the same."""
    with portable_cv():
        da = _hog(a)
        mirrored = (_hog(b), _hog(b[:, ::-1]))
    best = -1.0
    for db in mirrored:
        # Correctly rounded dot products (BLAS picks FMA kernels by CPU).
        denom = math.sqrt(fsum_dot(da, da) * fsum_dot(db, db))
        best = max(best, fsum_dot(da, db) / denom if denom > 0 else 0.0)
    return quantize(best)


def _hog(img: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    grey = cv2.resize(grey, (HOG_SIDE, HOG_SIDE), interpolation=cv2.INTER_AREA)
    desc = hog(grey, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), feature_vector=True)
    # Centre the descriptor: raw HOG vectors are all-positive, so any two images score ~0.7.
    return desc - desc.mean()


def identity_similarity(a: np.ndarray, b: np.ndarray) -> float:
    return quantize(0.5 * (colour_similarity(a, b) + max(0.0, structure_similarity(a, b))))


def _fit(img: np.ndarray, side: int) -> np.ndarray:
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    scale = side / max(img.shape[:2])
    if scale < 1.0:
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img[:, :, :3])


def subject_crops(sample: Sample) -> tuple[np.ndarray | None, list[np.ndarray]]:
    """(reference crop or None, output crops) using "subject*" / "face*" regions when present."""

    def crop(side: str, k: int, pixels: np.ndarray) -> np.ndarray:
        for r in sample.regions:
            if r.side == side and r.image == k and r.name.startswith(("subject", "face")):
                x0, y0, x1, y1 = r.resolved_box()
                h, w = pixels.shape[:2]
                box = pixels[int(y0 * h) : max(int(y1 * h), int(y0 * h) + 1), int(x0 * w) : max(int(x1 * w), int(x0 * w) + 1)]
                if min(box.shape[:2]) >= 8:
                    return _fit(box, 512)
        return _fit(pixels, 512)

    ref = crop("input", 0, sample.inputs[0].pixels) if sample.inputs else None
    return ref, [crop("output", k, p.pixels) for k, p in enumerate(sample.outputs)]


class ConsistencyScorer(Scorer):
    """Reference vs each panel, and every panel vs every other panel."""

    name = "consistency"
    version = "1"
    batch_size = 32

    def score_batch(self, samples: list[Sample]) -> list[ScoreResult]:
        out: list[ScoreResult] = []
        for s in samples:
            ref, panels = subject_crops(s)
            images = ([ref] if ref is not None else []) + panels
            if len(images) < 2:
                out.append(self.reject("too_few_views", f"{len(images)} image(s); need 2 to compare", s))
                continue
            pairs = [(i, j) for i in range(len(images)) for j in range(i + 1, len(images))]
            ident = [identity_similarity(images[i], images[j]) for i, j in pairs]
            colour = [colour_similarity(images[i], images[j]) for i, j in pairs]
            out.append(
                {
                    "identity_consistency": float(np.mean(ident)),
                    "identity_consistency_min": float(np.min(ident)),
                    "colour_consistency": float(np.mean(colour)),
                }
            )
        return out
