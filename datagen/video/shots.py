"""Hard-cut detection between consecutive sampled frames.

Frames are sampled sparsely (2 fps by default), so two frames of one shot can differ a lot
after a fast pan; colour histograms alone then fire on camera motion, and pixel differences
fire on everything. We ask the motion estimator instead: within a shot, B warped by the
fitted camera model lines up with A (normalised cross-correlation over the overlap > 0.9
for pans of half the frame, zooms and rolls, on scikit-image photos); across a cut it does
not (< 0.4). A colour-histogram distance or a low share of re-found texture must agree, so
a large moving object or a periodic texture that fools the camera fit does not split a
shot on its own. Frames with no contrast (black, fades) fall back to the histogram.

Gradual transitions (dissolves, fades) are not detected as cuts; see the module report.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from datagen.params import ProductConfig, param
from datagen.portable import portable_cv
from datagen.schema import quantize
from datagen.video.motion import MotionEstimate


@dataclass(frozen=True)
class CutRule(ProductConfig):
    """When two consecutive sampled frames lie on either side of a hard cut."""

    max_alignment: float = param(0.6, "A cut: A and camera-compensated B correlate less than this ...", min=-1.0,
                                 max=1.0)
    min_hist: float = param(0.25, "... and colours differ at least this much (Bhattacharyya) ...", min=0.0, max=1.0)
    max_matched: float = param(0.45, "... or less than this share of A's texture is found in B.", min=0.0, max=1.0)
    flat_hist: float = param(0.5, "Frames without texture: colour distance above which they are a cut.", min=0.0,
                             max=1.0)


@dataclass(frozen=True)
class Cut:
    is_cut: bool
    hist_distance: float
    alignment: float
    matched_fraction: float


def colour_histogram(rgb: np.ndarray) -> np.ndarray:
    """Normalised hue-saturation histogram plus a luma histogram (grey footage has no hue)."""
    with portable_cv():
        small = cv2.resize(rgb, (64, 36), interpolation=cv2.INTER_AREA) if rgb.shape[1] > 64 else rgb
        if small.ndim == 2:
            small = cv2.cvtColor(small, cv2.COLOR_GRAY2RGB)
        hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
        hs = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256]).ravel()
        v = cv2.calcHist([hsv], [2], None, [32], [0, 256]).ravel()
    return np.concatenate([hs / max(hs.sum(), 1.0), v / max(v.sum(), 1.0)]).astype(np.float32)


def hist_distance(h_a: np.ndarray, h_b: np.ndarray) -> float:
    """Larger of the hue-saturation and luma Bhattacharyya distances, in [0, 1]."""
    n = 16 * 8
    with portable_cv():
        d_hs = cv2.compareHist(h_a[:n], h_b[:n], cv2.HISTCMP_BHATTACHARYYA)
        d_v = cv2.compareHist(h_a[n:], h_b[n:], cv2.HISTCMP_BHATTACHARYYA)
    return quantize(min(1.0, max(d_hs, d_v)))  # the cut test decides on the stored value


def judge_cut(hist_d: float, est: MotionEstimate, rule: CutRule = CutRule()) -> Cut:
    if est.alignment < -0.5:  # no overlap or no contrast to compare: colours decide
        cut = hist_d > rule.flat_hist
    else:
        cut = est.alignment < rule.max_alignment and (
            hist_d > rule.min_hist or est.matched_fraction < rule.max_matched
        )
    return Cut(bool(cut), hist_d, est.alignment, est.matched_fraction)


def shot_ids(cuts: list[bool]) -> list[int]:
    """Shot id of each frame, given whether a cut lies between frame i and i+1."""
    ids, current = [0], 0
    for c in cuts:
        current += int(c)
        ids.append(current)
    return ids
