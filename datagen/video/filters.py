"""Per-frame and per-pair quality checks; each failure is a stable reason code.

Frame checks run once per sampled frame on a fixed "quality size" (short side 360), so
sharpness thresholds mean the same thing for 360p and 4K sources.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from datagen.params import ProductConfig, param
from datagen.portable import portable_cv
from datagen.schema import quantize

QUALITY_SHORT_SIDE = 360


@dataclass(frozen=True)
class QualityRule(ProductConfig):
    """When a sampled frame is unusable (blurry, black, blown out)."""

    min_sharpness: float = param(20.0, "Variance of the Laplacian (short side 360) below which a frame is blurry.",
                                 min=0.0, max=1e6)
    dark_level: int = param(16, "Luma at or below which a pixel counts as black.", min=0, max=255)
    bright_level: int = param(239, "Luma at or above which a pixel counts as blown out.", min=0, max=255)
    max_dark_fraction: float = param(0.92, "Share of black pixels above which a frame is underexposed.", min=0.0,
                                     max=1.0)
    max_bright_fraction: float = param(0.92, "Share of blown-out pixels above which a frame is overexposed.",
                                       min=0.0, max=1.0)


@dataclass(frozen=True)
class MotionRule(ProductConfig):
    """Static pairs out, high-motion pairs up-weighted; motion as a fraction of the frame diagonal."""

    min_norm: float = param(0.004, "Motion below which a pair is static (~6 px at 720p, ~3 px at 360p).", min=0.0,
                            max=1.0)
    boost_from: float = param(0.02, "Motion at which up-weighting starts ...", min=0.0, max=1.0)
    boost_to: float = param(0.10, "... and reaches max_weight.", min=0.0, max=1.0)
    max_weight: float = param(3.0, "Sampling weight of the fastest pairs (the trainer samples rows by weight).",
                              min=1.0, max=100.0)

    def validate(self) -> None:
        if self.boost_to < self.boost_from:
            raise ValueError(f"motion: boost_to ({self.boost_to}) must be >= boost_from ({self.boost_from})")


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
                   motion_px: float | None = None, min_px: float = 0.0) -> tuple[str, str] | None:
    """`min_px` is an optional floor in pixels of the original resolution (`--min-motion PX`)."""
    if motion_norm < rule.min_norm:
        return "static_pair", f"motion {motion_norm:.4f} of the diagonal < {rule.min_norm}"
    if motion_px is not None and motion_px < min_px:
        return "low_motion", f"motion {motion_px:.2f} px < {min_px} px (original resolution)"
    return None


def motion_weight(motion_norm: float, rule: MotionRule = MotionRule()) -> float:
    """1.0 up to `boost_from`, rising linearly to `max_weight` at `boost_to` (iMontage keeps
    high-motion pairs dominant; the trainer samples rows in proportion to `weight`)."""
    t = (motion_norm - rule.boost_from) / max(rule.boost_to - rule.boost_from, 1e-9)
    return float(1.0 + (rule.max_weight - 1.0) * min(1.0, max(0.0, t)))
