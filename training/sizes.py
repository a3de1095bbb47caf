"""Native sizes: every image keeps its own aspect ratio and shrinks to a pixel budget.

An image larger than `resolution**2` pixels is scaled down as a whole (never cropped, never
padded); every image's sides are then rounded to whole patches of the image space. So an
outpaint input that is the top 60% of a canvas reaches the model as the top 60% of that
canvas, and a 16:9 frame stays 16:9, whatever the other images of the sample look like.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from datagen.images import to_rgb

# Roles whose pixels are labels, not photographs: resampled without blending values.
NEAREST_ROLES = frozenset({"mask", "seg", "segmentation"})


def fit_size(height: int, width: int, resolution: int, multiple: int) -> tuple[int, int]:
    """(H, W) of an image after fitting: area <= resolution**2 (down-scaling only), sides
    multiples of `multiple` (at least one), the aspect ratio as close as the rounding allows.

    Among the whole-patch sizes next to the ideal scaled size that fit the budget, the one
    with the smallest aspect error plus half the area shortfall (both as log ratios) wins."""
    if height < 1 or width < 1:
        raise ValueError(f"image size {height}x{width} is empty")
    budget = resolution * resolution
    scale = min(1.0, math.sqrt(budget / (height * width)))
    th, tw = height * scale, width * scale  # the ideal size
    best, best_cost = (multiple, multiple), math.inf
    for h in {max(1, math.floor(th / multiple) + d) * multiple for d in (-1, 0, 1)}:
        for w in {max(1, math.floor(h * width / height / multiple) + d) * multiple for d in (0, 1)}:
            if h * w > max(budget, multiple * multiple):
                continue
            cost = abs(math.log((w / h) / (width / height))) + 0.5 * abs(math.log((h * w) / (th * tw)))
            if cost < best_cost:
                best, best_cost = (h, w), cost
    return best


def fit_sizes(heights: np.ndarray, widths: np.ndarray, resolution: int, multiple: int) -> tuple[np.ndarray, np.ndarray]:
    """`fit_size` of many images: (n,) int arrays -> (n,) fitted heights, widths."""
    pairs = {(int(h), int(w)) for h, w in zip(heights.tolist(), widths.tolist())}
    fitted = {p: fit_size(*p, resolution, multiple) for p in pairs}  # few distinct sizes per dataset
    out = np.array([fitted[(int(h), int(w))] for h, w in zip(heights.tolist(), widths.tolist())], np.int64)
    return (out[:, 0], out[:, 1]) if len(out) else (np.zeros(0, np.int64), np.zeros(0, np.int64))


def resize(pixels: np.ndarray, size: tuple[int, int], role: str = "") -> np.ndarray:
    """The whole image resampled to (H, W): area when shrinking, cubic when enlarging,
    nearest for label roles. Transparent pixels over white, as references are shown."""
    rgb = to_rgb(pixels, alpha="white")
    h, w = rgb.shape[:2]
    if (h, w) == tuple(size):
        return np.ascontiguousarray(rgb)
    if role in NEAREST_ROLES:
        interp = cv2.INTER_NEAREST
    else:
        interp = cv2.INTER_AREA if size[0] * size[1] < h * w else cv2.INTER_CUBIC
    return cv2.resize(rgb, (size[1], size[0]), interpolation=interp)


def fit_image(pixels: np.ndarray, resolution: int, multiple: int, role: str = "") -> np.ndarray:
    """An image at its fitted size (`fit_size`): HxWx3 uint8."""
    return resize(pixels, fit_size(pixels.shape[0], pixels.shape[1], resolution, multiple), role)


def grid_coverage(mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Fraction of each patch cell a boolean mask covers: (gh, gw) float32 in [0, 1].

    The mask is at its image's stored size; the image and its grid cover the same frame, so
    an area average onto the grid is exact up to the fitted size's rounding."""
    return cv2.resize(mask.astype(np.float32), (grid[1], grid[0]), interpolation=cv2.INTER_AREA)
