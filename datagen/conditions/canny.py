"""Canny edge maps (no weights): fixed thresholds, or automatic ones from the image median.

Edges are found on the RGB image (OpenCV takes the strongest gradient over the channels, as
ControlNet's own canny preprocessing does), so a red-green boundary of equal brightness
still gives an edge. The map is HxW, 0 or 255, at the image's own resolution.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from datagen.conditions.base import Annotator, register

# Auto thresholds are (1 -/+ sigma) x median (Rosebrock's "zero-parameter" canny).
# A floor keeps dark images (median ~15) from thresholding sensor noise as edges.
AUTO_SIGMA = 0.33
AUTO_MIN_LOW = 20
AUTO_MIN_GAP = 20


def auto_thresholds(gray: np.ndarray, sigma: float = AUTO_SIGMA) -> tuple[int, int]:
    """(low, high) hysteresis thresholds from the median brightness of a uint8 image."""
    median = float(np.median(gray))
    low = max(AUTO_MIN_LOW, int((1.0 - sigma) * median))
    high = min(255, max(low + AUTO_MIN_GAP, int((1.0 + sigma) * median)))
    return low, high


def canny_map(
    rgb: np.ndarray,
    low: int | None = None,
    high: int | None = None,
    blur_sigma: float = 1.0,
    sigma: float = AUTO_SIGMA,
) -> tuple[np.ndarray, tuple[int, int]]:
    """HxW uint8 edge map (0/255) and the thresholds used; `low=high=None` means automatic."""
    if blur_sigma > 0:
        # Light smoothing: without it, JPEG blocks and film grain become edge clutter.
        rgb = cv2.GaussianBlur(rgb, (0, 0), blur_sigma)
    if low is None or high is None:
        low, high = auto_thresholds(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), sigma)
    return cv2.Canny(rgb, low, high), (low, high)


class CannyAnnotator(Annotator):
    name = "canny"
    kind = "canny"
    version = "1"

    def __init__(self, low: int | None = None, high: int | None = None, blur_sigma: float = 1.0,
                 sigma: float = AUTO_SIGMA):
        super().__init__()
        if (low is None) != (high is None):
            raise ValueError("give both low and high for fixed thresholds, or neither for automatic ones")
        if low is not None and not 0 <= low <= high <= 1023:
            raise ValueError(f"need 0 <= low <= high, got low={low} high={high}")
        self.low, self.high, self.blur_sigma, self.sigma = low, high, float(blur_sigma), float(sigma)

    def options(self) -> dict[str, Any]:
        if self.low is None:
            return {"thresholds": "auto", "sigma": self.sigma, "blur_sigma": self.blur_sigma}
        return {"low": self.low, "high": self.high, "blur_sigma": self.blur_sigma}

    def _annotate(self, images: list[np.ndarray]) -> list[np.ndarray]:
        return [canny_map(img, self.low, self.high, self.blur_sigma, self.sigma)[0] for img in images]


register("canny", CannyAnnotator)
