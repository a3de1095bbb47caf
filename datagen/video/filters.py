"""Per-frame and per-pair quality checks; each failure is a stable reason code.

Frame checks run once per sampled frame on a fixed "quality size" (short side 360), so
sharpness thresholds mean the same thing for 360p and 4K sources.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from datagen.portable import portable_cv
from datagen.schema import quantize

QUALITY_SHORT_SIDE = 360


@dataclass(frozen=True)
class QualityRule:
    min_sharpness: float = 20.0  # variance of the Laplacian at the quality size
    dark_level: int = 16  # luma at or below: black
    bright_level: int = 239  # luma at or above: blown out
    max_dark_fraction: float = 0.92
    max_bright_fraction: float = 0.92


@dataclass(frozen=True)
class MotionRule:
    min_norm: float = 0.004  # below: a static pair (~6 px at 720p, ~3 px at 360p)
    min_px: float = 0.0  # optional floor in pixels of the original resolution (`--min-motion PX`)
    boost_from: float = 0.02  # up-weighting starts here...
    boost_to: float = 0.10  # ...and reaches max_weight here
    max_weight: float = 3.0


@dataclass(frozen=True)
class FrameQuality:
    sharpness: float
    mean_luma: float
    dark_fraction: float
    bright_fraction: float


def quality_grey(rgb: np.ndarray) -> np.ndarray:
    grey = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb[:, :, :3], cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    s = QUALITY_SHORT_SIDE / min(h, w)
    if s < 1.0:
        grey = cv2.resize(grey, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return grey


def measure_quality(rgb: np.ndarray, rule: QualityRule = QualityRule()) -> FrameQuality:
    """At the stored precision (schema.quantize), so the blur and exposure checks decide on
    the values a dataset keeps; the Laplacian runs on OpenCV's baseline kernels."""
    with portable_cv():
        grey = quality_grey(rgb)
        laplacian = cv2.Laplacian(grey, cv2.CV_32F)
    n = grey.size
    hist = np.bincount(grey.ravel(), minlength=256)
    return FrameQuality(
        sharpness=quantize(laplacian.astype(np.float64).var()),
        mean_luma=quantize(grey.mean()),
        dark_fraction=quantize(hist[: rule.dark_level + 1].sum() / n),
        bright_fraction=quantize(hist[rule.bright_level :].sum() / n),
    )


def frame_problem(q: FrameQuality, rule: QualityRule = QualityRule()) -> tuple[str, str] | None:
    """(reason, detail) when the frame is unusable, else None."""
    if q.dark_fraction > rule.max_dark_fraction:
        return "underexposed", f"{q.dark_fraction:.0%} of pixels at luma <= {rule.dark_level}"
    if q.bright_fraction > rule.max_bright_fraction:
        return "overexposed", f"{q.bright_fraction:.0%} of pixels at luma >= {rule.bright_level}"
    if q.sharpness < rule.min_sharpness:
        return "blurry", f"Laplacian variance {q.sharpness:.1f} < {rule.min_sharpness}"
    return None


def motion_problem(motion_norm: float, rule: MotionRule = MotionRule(),
                   motion_px: float | None = None) -> tuple[str, str] | None:
    if motion_norm < rule.min_norm:
        return "static_pair", f"motion {motion_norm:.4f} of the diagonal < {rule.min_norm}"
    if motion_px is not None and motion_px < rule.min_px:
        return "low_motion", f"motion {motion_px:.2f} px < {rule.min_px} px (original resolution)"
    return None


def motion_weight(motion_norm: float, rule: MotionRule = MotionRule()) -> float:
    """1.0 up to `boost_from`, rising linearly to `max_weight` at `boost_to` (iMontage keeps
    high-motion pairs dominant; the trainer samples rows in proportion to `weight`)."""
    t = (motion_norm - rule.boost_from) / max(rule.boost_to - rule.boost_from, 1e-9)
    return float(1.0 + (rule.max_weight - 1.0) * min(1.0, max(0.0, t)))
