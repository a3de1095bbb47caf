"""Aspect-ratio buckets: every sample trains at the bucket closest to its shape.

A bucket is an (H, W) of about `resolution**2` pixels whose sides are multiples of the
model's patch (times the VAE's downsampling), so a 16:9 frame is not squashed into a
square. All images of one sample go to its bucket (the DiT wants inputs and outputs to
share H, W); a batch holds one bucket only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from datagen.conditions.base import as_rgb
from training.config import parse_ratio

# Roles whose pixels are labels, not photographs: resampled without blending values.
NEAREST_ROLES = frozenset({"mask", "seg", "segmentation"})


@dataclass(frozen=True)
class Bucket:
    height: int
    width: int

    @property
    def aspect(self) -> float:
        return self.width / self.height

    def __str__(self) -> str:
        return f"{self.height}x{self.width}"


def make_buckets(resolution: int, ratios: list[str], multiple: int) -> list[Bucket]:
    """One bucket per aspect ratio (W:H), deduplicated, sorted by aspect."""
    if multiple < 1:
        raise ValueError(f"bucket multiple must be >= 1, got {multiple}")
    found: dict[tuple[int, int], Bucket] = {}
    for ratio in ratios:
        a = parse_ratio(ratio)
        h = max(multiple, round(resolution / math.sqrt(a) / multiple) * multiple)
        w = max(multiple, round(resolution * math.sqrt(a) / multiple) * multiple)
        found[(h, w)] = Bucket(h, w)
    return sorted(found.values(), key=lambda b: (b.aspect, b.height))


def assign_buckets(widths: np.ndarray, heights: np.ndarray, buckets: list[Bucket]) -> np.ndarray:
    """Index of the bucket nearest in log-aspect to each (width, height); (n,) int16."""
    aspects = np.log(np.maximum(widths, 1) / np.maximum(heights, 1))  # (n,)
    centres = np.log(np.array([b.aspect for b in buckets]))  # (K,)
    return np.abs(aspects[:, None] - centres[None, :]).argmin(axis=1).astype(np.int16)


def fit_to_bucket(pixels: np.ndarray, bucket: Bucket, role: str = "") -> np.ndarray:
    """Scale to cover the bucket, then centre-crop: no padding, no distortion. -> HxWx3 uint8."""
    rgb = as_rgb(pixels)  # transparent pixels over white, as references are shown
    h, w = rgb.shape[:2]
    scale = max(bucket.height / h, bucket.width / w)
    nh, nw = max(bucket.height, round(h * scale)), max(bucket.width, round(w * scale))
    if role in NEAREST_ROLES:
        interp = cv2.INTER_NEAREST
    else:
        interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_CUBIC
    if (nh, nw) != (h, w):
        rgb = cv2.resize(rgb, (nw, nh), interpolation=interp)
    y0, x0 = (nh - bucket.height) // 2, (nw - bucket.width) // 2
    return np.ascontiguousarray(rgb[y0:y0 + bucket.height, x0:x0 + bucket.width])
