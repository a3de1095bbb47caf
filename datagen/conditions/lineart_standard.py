"""Line art without weights: the "lineart_standard" preprocessor of ControlNet 1.1.

A pixel is on a line by how much darker it is than its blurred neighbourhood (in the
channel where it is darkest), normalised by the median line strength so faint drawings and
high-contrast photos give similar stroke intensity. White lines on black, HxW uint8.
Computed at a 512px short side, where the blur radius was tuned, then resized back.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from datagen.conditions.base import Annotator, register, resize_to, working_size
from datagen.portable import portable_cv


def lineart_standard_map(
    rgb: np.ndarray, blur_sigma: float = 6.0, intensity_threshold: float = 8.0, resolution: int = 512
) -> np.ndarray:
    h, w = rgb.shape[:2]
    wh, ww = working_size(h, w, resolution)
    interpolation = cv2.INTER_AREA if wh < h else cv2.INTER_CUBIC
    x = cv2.resize(rgb, (ww, wh), interpolation=interpolation).astype(np.float32)
    with portable_cv():  # a float blur: OpenCV's dispatched kernels round differently per CPU
        blurred = cv2.GaussianBlur(x, (0, 0), blur_sigma)
    darker = np.min(blurred - x, axis=2).clip(0, 255)
    strong = darker[darker > intensity_threshold]
    # Median of the real strokes, floored so a near-blank image is not blown up to noise.
    scale = max(16.0, float(np.median(strong))) if strong.size else 16.0
    line = (darker * (127.0 / scale)).clip(0, 255).astype(np.uint8)
    return resize_to(line, h, w, cv2.INTER_CUBIC)


class LineartStandardAnnotator(Annotator):
    name = "lineart_standard"
    kind = "lineart"
    version = "1"

    def __init__(self, blur_sigma: float = 6.0, intensity_threshold: float = 8.0, resolution: int = 512):
        super().__init__()
        self.blur_sigma, self.resolution = float(blur_sigma), int(resolution)
        self.intensity_threshold = float(intensity_threshold)

    def options(self) -> dict[str, Any]:
        return {"blur_sigma": self.blur_sigma, "intensity_threshold": self.intensity_threshold,
                "resolution": self.resolution}

    def _annotate(self, images: list[np.ndarray]) -> list[np.ndarray]:
        return [lineart_standard_map(img, self.blur_sigma, self.intensity_threshold, self.resolution) for img in images]


register("lineart_standard", LineartStandardAnnotator)
