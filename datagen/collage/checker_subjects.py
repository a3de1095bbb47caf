"""Independent checks for subject references that are not copies (edit.subject(s), ref.canvas,
ref.subject(s)_varied).

Each reference's meta carries the affine that maps the target canvas onto the reference
canvas, the relighting gains, the neutral backdrop and its crop. The checker proves, from
stored pixels and masks alone, that they describe what is there:
- the reference is zero-padded outside its crop and exactly the neutral colour inside it,
  except on the subject's mask;
- shape: the reference mask mapped back onto the target by the affine (bilinear, > 0.5)
  agrees with the target's mask to within 1 px, up to 3% of the shape (both are resamplings
  of one master cutout; measured: 0% off at 128-512 px);
- colour: the reference, smoothed to the target's scale and mapped back, matches the
  target relit by the gains: the median difference over the n pixels of the shared core is
  <= 12 + 120 / sqrt(n) levels (a small object's median is noisy; measured on 1394
  references at 64-96 px: >= 5.9 levels of margin, and <= 10 levels for cores of 400+ px);
- not a copy: the affine mirrors or rotates by >= 8 degrees, scales by >= 1.2x, and the
  gains differ from 1 by >= 0.1 (read from the affine itself, which the two checks above
  tie to the pixels);
- the subject sits in the named cell, and the instruction names its reference.
For edits the scene outside the inserted subjects is byte-identical, as in edit.add.
"""

from __future__ import annotations

import cv2
import numpy as np

from datagen.collage.checker_pixels import (
    Fail,
    beyond,
    box_px,
    cell,
    changed,
    mask_of,
    mostly_changed,
    only_inside,
    pixels,
    rgb_match,
    says,
)
from datagen.schema import Sample

SHAPE_OFF = 0.03
COLOUR_GAP, COLOUR_GAP_SMALL = 12.0, 120.0  # tolerance 12 + 120 / sqrt(core pixels)
MIN_TURN_DEG, MIN_SCALE, MIN_RELIGHT = 8.0, 1.2, 0.1


def _index_map(affine) -> np.ndarray:
    """Continuous-coordinate affine -> the pixel-index form warpAffine uses."""
    m = np.asarray(affine, np.float64)
    out = m.copy()
    out[:, 2] += m[:, :2] @ [0.5, 0.5] - 0.5
    return out


def _roi(box, pad: int, w: int, h: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    return max(0, int(np.floor(x0)) - pad), max(0, int(np.floor(y0)) - pad), \
        min(w, int(np.ceil(x1)) + pad), min(h, int(np.ceil(y1)) + pad)


def check_reference(s: Sample, k: int, target: np.ndarray) -> None:
    """Subject k: its reference (input meta["references"][k]["input"]) against the target."""
    info = s.meta["references"][k]
    i = int(info["input"])
    ref = pixels(s, "input", i)
    m_in, m_out = mask_of(s, f"subject:{k}", "input", i), mask_of(s, f"subject:{k}", "output")
    h, w = ref.shape[:2]
    x0, y0, x1, y1 = (int(v) for v in info["crop_px"])
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h) or box_px(m_in) != _clip(box_px(m_in), x0, y0, x1, y1):
        raise Fail(f"reference_crop: <image {i + 1}> crop {info['crop_px']} does not hold the subject")
    strips = (ref[:y0], ref[y1:], ref[y0:y1, :x0], ref[y0:y1, x1:])  # everything outside the crop
    pad = sum(int(np.count_nonzero(~rgb_match(p, info["pad_rgb"], 0))) for p in strips if p.size)
    crop, crop_mask = ref[y0:y1, x0:x1], m_in[y0:y1, x0:x1]
    bad_backdrop = int(np.count_nonzero(~rgb_match(crop, info["neutral_rgb"], 0) & ~crop_mask))
    if pad != 0 or bad_backdrop:
        raise Fail(f"reference_backdrop: <image {i + 1}> padding or backdrop wrong ({pad}, {bad_backdrop}px)")

    linear = np.asarray(info["affine"], np.float64)[:, :2]
    scale = float(np.sqrt(abs(np.linalg.det(linear))))
    # Rotation angle of the linear part (a mirror first: undo it on x before reading the angle).
    mirrored = np.linalg.det(linear) < 0
    rot = linear @ np.diag([-1.0, 1.0]) if mirrored else linear
    angle = abs(float(np.degrees(np.arctan2(rot[1, 0], rot[0, 0]))))
    gains = np.asarray(info["gains_256"], np.float64) / 256.0
    if not (mirrored or angle >= MIN_TURN_DEG) or not (scale >= MIN_SCALE or scale <= 1 / MIN_SCALE) \
            or np.max(np.abs(gains - 1.0)) < MIN_RELIGHT:
        raise Fail(f"reference_is_a_copy: <image {i + 1}> mirrored={mirrored}, turned {angle:.0f} deg, "
                   f"scaled {scale:.2f}x, gains {gains.tolist()}")

    # Work on windows: the target's subject box plus where the affine sends the reference's.
    th, tw = target.shape[:2]
    idx = _index_map(info["affine"])
    inv = cv2.invertAffineTransform(idx)
    rb = box_px(m_in)
    corners = inv @ np.array([[rb[0], rb[2], rb[0], rb[2]], [rb[1], rb[1], rb[3], rb[3]], [1.0] * 4])
    ob = box_px(m_out)
    tx0, ty0, tx1, ty1 = _roi((min(ob[0], *corners[0]), min(ob[1], *corners[1]), max(ob[2], *corners[0]) + 1,
                               max(ob[3], *corners[1]) + 1), 2, tw, th)
    sx0, sy0, sx1, sy1 = _roi(rb, 8, w, h)
    local = idx.copy()
    local[:, 2] += idx[:, :2] @ [tx0, ty0] - [sx0, sy0]
    size = (tx1 - tx0, ty1 - ty0)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    back = cv2.warpAffine(m_in[sy0:sy1, sx0:sx1].astype(np.float32), local, size, flags=flags) > 0.5
    out = m_out[ty0:ty1, tx0:tx1]
    if np.count_nonzero(back) < np.count_nonzero(m_in) / (4 * scale * scale):
        raise Fail(f"subject_shape_mismatch: <image {i + 1}> the affine maps the subject off the target")
    off = (beyond(back, out) + beyond(out, back)) / max(1, int(np.count_nonzero(back | out)))
    if off > SHAPE_OFF:
        raise Fail(f"subject_shape_mismatch: <image {i + 1}> {100 * off:.1f}% of the shape is off the affine")

    # Smooth away the detail the target's scale cannot show, then compare colours on the core.
    smooth = cv2.GaussianBlur(np.ascontiguousarray(ref[sy0:sy1, sx0:sx1]), (0, 0), max(0.5, 0.5 * scale))
    warped = cv2.warpAffine(smooth, local, size, flags=flags)
    core = cv2.erode((back & out).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    if core.any():
        want = np.clip(target[ty0:ty1, tx0:tx1][core].astype(np.float32) * gains.astype(np.float32), 0, 255)
        gap = float(np.median(np.abs(warped[core].astype(np.float32) - want).max(axis=1)))
        if gap > COLOUR_GAP + COLOUR_GAP_SMALL / np.sqrt(len(want)):
            raise Fail(f"subject_colour_mismatch: <image {i + 1}> differs from the relit target by {gap:.0f}")
    got = cell(ob, tw, th)
    if got != s.meta["positions"][k]:
        raise Fail(f"wrong_position: subject {k} is {got}, meta says {s.meta['positions'][k]}")
    says(s, f"<image {i + 1}>")


def _clip(box, x0: int, y0: int, x1: int, y1: int) -> tuple[int, int, int, int]:
    return max(box[0], x0), max(box[1], y0), min(box[2], x1), min(box[3], y1)


def _all_references(s: Sample, target: np.ndarray) -> None:
    n = len(s.meta["references"])
    want = {"edit.subject": (1, 1), "ref.subject_varied": (1, 1), "edit.subjects": (2, 3),
            "ref.subjects_varied": (2, 3), "ref.canvas": (1, 3)}[s.task]
    if not want[0] <= n <= want[1]:
        raise Fail(f"subject_count: {n} references for {s.task}")
    inputs = sorted(int(r["input"]) for r in s.meta["references"])
    first = 1 if s.task.startswith("edit.") or s.task == "ref.canvas" else 0
    if inputs != list(range(first, first + n)) or len(s.inputs) != first + n:
        raise Fail(f"reference_inputs: {inputs} of {len(s.inputs)} inputs")
    for k in range(n):
        check_reference(s, k, target)


def check_edit_subject(s: Sample) -> None:
    src, dst = pixels(s, "input", 0), pixels(s, "output", 0)
    diff = changed(src, dst)
    added = np.zeros(dst.shape[:2], bool)
    for k in range(len(s.meta["references"])):
        area = mask_of(s, f"subject:{k}", "output")
        mostly_changed(diff, area)
        added |= area
    only_inside(diff, added)
    _all_references(s, dst)


def check_canvas(s: Sample) -> None:
    blank, dst = pixels(s, "input", 0), pixels(s, "output", 0)
    if blank.shape != dst.shape:
        raise Fail(f"canvas_size: {blank.shape} vs output {dst.shape}")
    stray = int(np.count_nonzero(~rgb_match(blank, s.meta["canvas_rgb"], 0)))
    if stray:
        raise Fail(f"canvas_not_blank: {stray}px")
    says(s, "<image 1>")
    _all_references(s, dst)


def check_varied(s: Sample) -> None:
    _all_references(s, pixels(s, "output", 0))
