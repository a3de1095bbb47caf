"""Pixel operations of a collage: resample a cutout, place it, blend it, know its exact mask.

Cutouts travel as premultiplied RGBA patches, so resizing and rotating never drag dark
fringes in from transparent pixels, and blending is one multiply-add on the patch's own
rectangle. A pixel with alpha 0 is left byte-identical; a pixel with alpha 255 becomes the
object exactly. That is what makes every region mask exact: the pixels an edit changes are
precisely the pixels where some alpha is > 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from datagen.images import warp_affine
from datagen.schema import mask_box_px

# Resampling leaves a haze of tiny alphas around an object. Zeroing them keeps masks
# honest: every mask pixel carries at least ~10% of the object, so it visibly changes.
ALPHA_FLOOR = 24
# A resized object thinner than this (a rocket on a tiny canvas) is a smear, not an object.
MIN_SHORT_PX = 6


class Unlucky(Exception):
    """This draw cannot be completed (no room, too little contrast); draw again."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def clean(patch: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Zero faint alpha, keep RGB <= alpha, crop to the ink; returns (patch, x offset, y offset)."""
    alpha = cv2.threshold(np.ascontiguousarray(patch[:, :, 3]), ALPHA_FLOOR - 1, 255, cv2.THRESH_TOZERO)[1]
    x, y, w, h = cv2.boundingRect(alpha)
    if w == 0 or h == 0:
        raise Unlucky("object_vanished")
    alpha = alpha[y : y + h, x : x + w]
    # Premultiplied colour can never exceed its alpha; clamping also blanks RGB where alpha is 0.
    rgb = np.minimum(patch[y : y + h, x : x + w, :3], alpha[:, :, None])
    return cv2.merge([rgb[:, :, 0], rgb[:, :, 1], rgb[:, :, 2], alpha]), int(x), int(y)


def fit(premul: np.ndarray, longest: int) -> np.ndarray:
    """Resize a premultiplied patch so its long side is `longest` px, then clean it."""
    return resize(premul, longest)[0]


def resize(premul: np.ndarray, longest: int) -> tuple[np.ndarray, np.ndarray]:
    """`fit`, plus the 2x3 affine taking input pixel (index) coordinates to the result's."""
    h, w = premul.shape[:2]
    s = longest / max(h, w)
    out_w, out_h = max(1, int(round(w * s))), max(1, int(round(h * s)))
    # Area averaging only where it matters (strong shrinks); it is several times slower.
    interp = cv2.INTER_AREA if s < 0.6 else cv2.INTER_LINEAR
    patch, ox, oy = clean(cv2.resize(premul, (out_w, out_h), interpolation=interp))
    if min(patch.shape[:2]) < MIN_SHORT_PX:
        raise Unlucky("object_too_thin")
    sx, sy = out_w / w, out_h / h
    # OpenCV resizes pixel centres: x' = (x + 0.5) * sx - 0.5.
    return patch, np.array([[sx, 0.0, 0.5 * sx - 0.5 - ox], [0.0, sy, 0.5 * sy - 0.5 - oy]])


def warp(premul: np.ndarray, angle: float, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate (degrees, counter-clockwise on screen) and scale a patch about its centre.

    Returns the new patch and the 2x3 affine mapping old-patch pixel coordinates to
    new-patch pixel coordinates, so callers can move drag points exactly as the pixels moved.
    """
    h, w = premul.shape[:2]
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    m = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    # Grow the canvas so nothing is clipped, then shift so the content is centred in it.
    half = 0.5 * scale * np.hypot(w, h) + 2
    out_w = out_h = int(np.ceil(2 * half))
    m[:, 2] += (out_w - 1) / 2.0 - cx, (out_h - 1) / 2.0 - cy
    moved = warp_affine(premul, m, (out_w, out_h))  # bit-exact on every CPU, unlike cv2.warpAffine
    patch, ox, oy = clean(moved)
    m[:, 2] -= ox, oy
    return patch, m


def blend(canvas: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    """Alpha-blend a premultiplied patch into `canvas` (HxWx3 uint8) at (x, y), in place."""
    h, w = patch.shape[:2]
    region = canvas[y : y + h, x : x + w]
    if region.shape[:2] != (h, w):
        raise ValueError(f"patch {w}x{h} at ({x}, {y}) leaves the {canvas.shape[1]}x{canvas.shape[0]} canvas")
    inv = cv2.cvtColor(cv2.bitwise_not(np.ascontiguousarray(patch[:, :, 3])), cv2.COLOR_GRAY2RGB)
    # round(bg * (255 - a) / 255) + premultiplied fg. 255 is odd, so the quotient is never
    # exactly x.5 and float rounding is exact: a = 0 keeps bg, a = 255 gives fg, bit for bit.
    region[...] = cv2.add(cv2.multiply(region, inv, scale=1.0 / 255), np.ascontiguousarray(patch[:, :, :3]))


def patch_mask(patch: np.ndarray, x: int, y: int, size: int) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    h, w = patch.shape[:2]
    mask[y : y + h, x : x + w] = patch[:, :, 3] > 0
    return mask


def greyscale(premul: np.ndarray) -> np.ndarray:
    """The same object in black and white (premultiplied grey stays <= alpha)."""
    grey = cv2.cvtColor(np.ascontiguousarray(premul[:, :, :3]), cv2.COLOR_RGB2GRAY)
    grey = np.minimum(grey, premul[:, :, 3])
    return np.dstack([grey, grey, grey, premul[:, :, 3]])


def changed_fraction(before: np.ndarray, after: np.ndarray, mask: np.ndarray, level: int = 16) -> float:
    """Share of mask pixels whose colour moved by >= `level` in some channel."""
    px = mask_box_px(mask)
    if px is None:
        return 0.0
    box = (slice(px[1], px[3]), slice(px[0], px[2]))  # only the mask's box
    d = cv2.absdiff(before[box], after[box])
    moved = np.maximum(np.maximum(d[:, :, 0], d[:, :, 1]), d[:, :, 2]) >= level
    m = mask[box]
    return float(np.count_nonzero(moved & m)) / np.count_nonzero(m)


@dataclass
class Placed:
    """One object on a canvas: a premultiplied patch at an integer position."""

    name: str
    asset_id: str
    patch: np.ndarray
    x: int
    y: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        h, w = self.patch.shape[:2]
        return (self.x, self.y, self.x + w, self.y + h)

    @property
    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return ((x0 + x1) / 2.0, (y0 + y1) / 2.0)

    def mask(self, size: int) -> np.ndarray:
        return patch_mask(self.patch, self.x, self.y, size)

    def moved(self, patch: np.ndarray, x: int, y: int, name: str | None = None, asset_id: str | None = None):
        return Placed(name or self.name, asset_id or self.asset_id, patch, x, y)


def boxes_apart(a, b, gap: int) -> bool:
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


def find_spot(rng, w: int, h: int, size: int, taken, *, margin: int, gap: int, area=None, tries: int = 40):
    """A top-left (x, y) for a w x h patch inside the canvas (and inside `area`, a pixel box
    the patch's centre must fall in), `gap` px clear of every box in `taken`; None if none fits."""
    lo_x, lo_y, hi_x, hi_y = margin, margin, size - margin - w, size - margin - h
    if area is not None:
        ax0, ay0, ax1, ay1 = area
        lo_x, hi_x = max(lo_x, int(np.ceil(ax0 - w / 2))), min(hi_x, int(np.floor(ax1 - w / 2)))
        lo_y, hi_y = max(lo_y, int(np.ceil(ay0 - h / 2))), min(hi_y, int(np.floor(ay1 - h / 2)))
    if hi_x < lo_x or hi_y < lo_y:
        return None
    for _ in range(tries):
        x = int(rng.integers(lo_x, hi_x + 1))
        y = int(rng.integers(lo_y, hi_y + 1))
        if all(boxes_apart((x, y, x + w, y + h), b, gap) for b in taken):
            return x, y
    return None
