"""Subject references that are not copies of the target (AnyStory, DreamO).

A reference shows the same cutout as the target, but mirrored (half the time), rotated by
10-40 degrees, at another scale (1.3-3x the target's), relit (per-channel gains: brighter
or darker, warmer or cooler) and placed in a crop of a neutral backdrop that is zero-padded
to the square canvas, the way reference photos are cropped around their subject and padded
for a model. A model cannot solve the task by copying pixels from the reference.

Nothing is approximate: one 2x3 affine maps the target canvas onto the reference canvas
(continuous pixel coordinates: pixel i spans [i, i + 1)), the gains are multiples of 1/256
applied with integer arithmetic, and the reference's region is the transformed patch's
alpha > 0, exactly as every other collage region. The independent checker warps one image
onto the other with that affine and compares shape and colour (`checker_subjects.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from datagen.collage import compose, scene
from datagen.collage.compose import Unlucky
from datagen.collage.pack import PreparedCutout

VERSION = 1
ANGLE_DEG = (10.0, 40.0)
REF_SIZE = (0.4, 0.56)  # object long side before rotation, share of the canvas (targets: 0.2-0.3)
BRIGHTNESS = ((0.72, 0.88), (1.14, 1.3))  # darker or brighter, never about the same
TINT = 0.08  # warm (red up, blue down) or cool, at most this much
GAIN_ONE = 256  # gains are stored as integers over this, so relighting is exact integer maths
CROP_SHARE = (0.6, 0.86)  # the cropped side of the backdrop, share of the canvas; the rest is padding
NEUTRAL = {"white": (255, 255, 255), "light grey": (224, 224, 224)}
PAD_RGB = (0, 0, 0)


@dataclass
class VariedRef:
    image: np.ndarray  # size x size x 3
    mask: np.ndarray  # size x size bool: the subject in the reference, exact
    meta: dict  # how it relates to the target (see `build`)


def _h(m: np.ndarray) -> np.ndarray:
    return m if m.shape == (3, 3) else np.vstack([m, [0.0, 0.0, 1.0]])


def _shift(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def relight(premul: np.ndarray, gains_q: tuple[int, int, int]) -> np.ndarray:
    """Scale a premultiplied patch's colour by gains/256 (rounded), clipped at its alpha (= white)."""
    lit = (premul[:, :, :3].astype(np.uint32) * np.asarray(gains_q, np.uint32) + GAIN_ONE // 2) >> 8
    rgb = np.minimum(lit, premul[:, :, 3:4]).astype(np.uint8)
    return np.concatenate([rgb, premul[:, :, 3:4]], axis=2)


def draw_gains(rng) -> tuple[int, int, int]:
    lo, hi = BRIGHTNESS[int(rng.integers(len(BRIGHTNESS)))]
    level = rng.uniform(lo, hi)
    tint = rng.uniform(-TINT, TINT)
    return tuple(int(round(GAIN_ONE * level * f)) for f in (1.0 + tint, 1.0, 1.0 - tint))  # type: ignore[return-value]


def build(rng, cutout: PreparedCutout, master_to_target: np.ndarray, size: int) -> VariedRef:
    """The reference image of `cutout`, whose target rendering is `master_to_target` (3x3,
    master pixel index -> target canvas index, as `scene.place_tracked` returns it)."""
    master = cutout.premul
    h, w = master.shape[:2]
    flip = bool(rng.random() < 0.5)
    angle = float(rng.uniform(*ANGLE_DEG)) * (1.0 if rng.random() < 0.5 else -1.0)
    longest = scene.object_px(rng, size, *REF_SIZE)
    gains_q = draw_gains(rng)
    neutral_name = list(NEUTRAL)[int(rng.integers(len(NEUTRAL)))]

    mirror = np.array([[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) if flip else np.eye(3)
    src = cv2.flip(master, 1) if flip else master
    # Resize first (area-averaged when shrinking), then rotate at scale 1: sharper than one warp.
    patch, to_scaled = compose.resize(src, longest)
    patch, to_rotated = compose.warp(patch, angle, 1.0)
    patch = relight(patch, gains_q)

    ph, pw = patch.shape[:2]
    m = scene.margin(size)
    # The backdrop is cropped on one axis (a portrait or landscape photo), padded on it to square.
    vertical_pad = bool(rng.random() < 0.5)
    inner = pw if not vertical_pad else ph
    crop = max(int(round(size * rng.uniform(*CROP_SHARE))), inner + 2 * m)
    if crop > size - 2 or max(pw, ph) > size - 2 * m:
        raise Unlucky("reference_too_big")
    cw, ch = (size, crop) if vertical_pad else (crop, size)
    ox, oy = int(rng.integers(0, size - cw + 1)), int(rng.integers(0, size - ch + 1))
    x = ox + int(rng.integers(m, cw - pw - m + 1))
    y = oy + int(rng.integers(m, ch - ph - m + 1))

    image = np.zeros((size, size, 3), np.uint8) if PAD_RGB == (0, 0, 0) else np.full((size, size, 3), PAD_RGB, np.uint8)
    # A row broadcast down the crop: an order of magnitude faster than assigning an RGB tuple.
    image[oy : oy + ch, ox : ox + cw] = np.array([NEUTRAL[neutral_name]] * cw, np.uint8)
    compose.blend(image, patch, x, y)
    mask = compose.patch_mask(patch, x, y, size)

    master_to_ref = _shift(x, y) @ _h(to_rotated) @ _h(to_scaled) @ mirror
    index_map = master_to_ref @ np.linalg.inv(master_to_target)  # target index -> reference index
    affine = (_shift(0.5, 0.5) @ index_map @ _shift(-0.5, -0.5))[:2]  # in continuous coordinates
    meta = {
        "flip": flip,
        "angle_deg": round(angle, 3),
        "scale": round(float(np.sqrt(abs(np.linalg.det(affine[:, :2])))), 4),
        # The integers relight() used (exact), and their value for people (stored floats are
        # rounded to 6 significant digits, which a multiple of 1/256 can exceed).
        "gains_256": [int(g) for g in gains_q],
        "gains": [g / GAIN_ONE for g in gains_q],
        "neutral": neutral_name,
        "neutral_rgb": list(NEUTRAL[neutral_name]),
        "pad_rgb": list(PAD_RGB),
        "crop_px": [ox, oy, ox + cw, oy + ch],
        "affine": np.round(affine, 6).tolist(),
    }
    return VariedRef(image, mask, meta)
