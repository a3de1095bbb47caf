"""Pixel and region helpers for the independent checker (nothing here is shared with generation).

The checker re-derives every fact from what a stored sample carries: decoded pixels, region
masks and meta. Its position words, size words and colour matching are its own, so a bug in
the generator's bookkeeping cannot vouch for itself.
"""

from __future__ import annotations

import cv2
import numpy as np

from datagen.schema import Region, Sample, mask_box_px

CELL_NAMES = (("top left", "top", "top right"), ("left", "center", "right"),
              ("bottom left", "bottom", "bottom right"))


class Fail(Exception):
    """A check failed; the message is the short reason check() returns."""


def regions(sample: Sample, name: str, side: str | None = None, image: int | None = None) -> list[Region]:
    return [r for r in sample.regions if r.name == name and (side is None or r.side == side)
            and (image is None or r.image == image)]


def mask_of(sample: Sample, name: str, side: str, image: int = 0) -> np.ndarray:
    found = regions(sample, name, side, image)
    if not found:
        raise Fail(f"missing_region: {name!r} on {side} {image}")
    if found[0].mask is None:
        raise Fail(f"region_without_mask: {name!r}")
    return found[0].mask.astype(bool)


def pixels(sample: Sample, side: str, index: int) -> np.ndarray:
    pics = sample.inputs if side == "input" else sample.outputs
    if index >= len(pics):
        raise Fail(f"missing_image: {side} {index}")
    p = pics[index].pixels
    return p[:, :, None] if p.ndim == 2 else p[:, :, :3]


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pixels that differ at all, in any channel (lossless PNG: no noise to forgive)."""
    if a.shape != b.shape:
        raise Fail(f"shape_mismatch: {a.shape} vs {b.shape}")
    d = cv2.absdiff(a, b)
    if d.ndim == 2 or d.shape[2] == 1:
        return d.reshape(d.shape[:2]) > 0
    # OR of the channels: three 2-D passes, several times faster than max(axis=2) on HxWx3.
    return (d[:, :, 0] | d[:, :, 1] | d[:, :, 2]) > 0


def only_inside(diff: np.ndarray, allowed: np.ndarray, what: str = "region") -> None:
    # Zero tolerance: compositing leaves every pixel outside the alpha > 0 area byte-identical.
    outside = int(np.count_nonzero(diff & ~allowed))
    if outside:
        raise Fail(f"diff_outside_{what}: {outside}px")


def mostly_changed(diff: np.ndarray, area: np.ndarray, share: float = 0.5) -> None:
    # The generator redraws edits where < 60% of the area visibly changes; requiring 50% to
    # change at all leaves room for object pixels that happen to match the background.
    n = int(np.count_nonzero(area))
    if n == 0:
        raise Fail("empty_region")
    got = np.count_nonzero(diff & area) / n
    if got < share:
        raise Fail(f"region_unchanged: {100 * got:.0f}% of {n}px")


def edit_area(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Where an edit must show: what appeared or vanished (XOR), or the whole object when its
    place did not change (a recolour)."""
    xor = before ^ after
    return xor if xor.any() else before | after


def box_px(mask: np.ndarray) -> tuple[int, int, int, int]:
    box = mask_box_px(mask)
    if box is None:
        raise Fail("empty_region")
    return box


def cell(box, width: int, height: int) -> str:
    cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    col = min(2, max(0, int(3 * cx / width)))
    row = min(2, max(0, int(3 * cy / height)))
    return CELL_NAMES[row][col]


def rgb_match(img: np.ndarray, rgb, tol: int) -> np.ndarray:
    """Pixels within `tol` of `rgb` in every channel."""
    rgb = np.asarray(rgb, np.int16)
    lo, hi = np.clip(rgb - tol, 0, 255).astype(np.uint8), np.clip(rgb + tol, 0, 255).astype(np.uint8)
    return cv2.inRange(np.ascontiguousarray(img[:, :, :3]), lo, hi) > 0


def beyond(a: np.ndarray, b: np.ndarray) -> int:
    """Pixels of mask `a` more than 1 px from mask `b` (alpha > 0 edges may move by one pixel
    when an object is resampled; anything further is a real disagreement)."""
    near = cv2.dilate(b.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    return int(np.count_nonzero(a & ~near))


def says(sample: Sample, *phrases: str) -> None:
    """The instruction mentions each phrase (case-insensitively: sentences start upper-case)."""
    text = sample.instruction.lower()
    for p in phrases:
        if p.lower() not in text:
            raise Fail(f"instruction_missing: {p!r}")
