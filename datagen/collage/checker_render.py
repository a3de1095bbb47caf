"""Independent checks for rendered targets (t2i.*) and condition/reference tasks (ref.*).

There is no "before" image here, so each check verifies what pixels can prove:
- t2i.text: >= 10% of the text mask is exactly the named colour (+-2 levels; anti-aliased
  glyph edges blend with what is under them), the text box sits in the named cell and
  does not touch the canvas border, the instruction quotes the exact string;
- t2i.shapes: the number of blobs of each named colour (+-3 levels, after a 3x3 opening that
  removes 1-px anti-aliasing rims) equals the stated count; sizes and places per region;
- t2i.layout: every stated relation holds between the region boxes; objects do not overlap;
- ref.canny: Canny recomputed on the target matches the condition (<= 0.5% of its edge
  pixels may differ, allowing for OpenCV version drift);
- ref.seg: the map holds only the legend's colours; each label lies inside its object's
  mask and covers >= 50% of it (the label is alpha >= 50%, the mask alpha > 0);
- ref.subject: each reference shows its object on the neutral colour; the object's mask in
  the target has the same shape (after scaling the boxes together, <= 10% of the shape lies
  more than 1 px off) and colour (median difference <= 24 levels).
"""

from __future__ import annotations

import cv2
import numpy as np

from datagen.collage.checker_pixels import (
    Fail,
    beyond,
    box_px,
    cell,
    mask_of,
    pixels,
    rgb_match,
    says,
)
from datagen.schema import Sample

SIZE_WORDS = {"small": (0.05, 0.1), "medium": (0.1, 0.17), "large": (0.17, 0.26)}  # shape box side / canvas
MIN_BLOB = 6
COUNT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def check_text(s: Sample) -> None:
    img = pixels(s, "output", 0)
    h, w = img.shape[:2]
    mask = mask_of(s, "text", "output")
    x0, y0, x1, y1 = box_px(mask)
    if x0 == 0 or y0 == 0 or x1 == w or y1 == h:
        raise Fail("text_touches_border")
    if cell((x0, y0, x1, y1), w, h) != s.meta["position"]:
        raise Fail(f"wrong_position: text is {cell((x0, y0, x1, y1), w, h)}")
    share = np.count_nonzero(rgb_match(img, s.meta["rgb"], 2) & mask) / np.count_nonzero(mask)
    if share < 0.1:
        raise Fail(f"text_colour_missing: {100 * share:.0f}% of the text is {s.meta['colour']}")
    says(s, f'"{s.meta["text"]}"', s.meta["colour"], s.meta["font_family"])


def check_shapes(s: Sample) -> None:
    img = pixels(s, "output", 0)
    h, w = img.shape[:2]
    for g in s.meta["groups"]:
        names = [r for r in s.regions if r.name.startswith(f"{g['colour']} {g['shape']} ")]
        if len(names) != int(g["count"]):
            raise Fail(f"shape_regions: {len(names)} regions for {g['count']} {g['colour']} {g['shape']}")
        lo, hi = SIZE_WORDS[g["size"]]
        for r in names:
            box = box_px(r.mask)
            side = max(box[2] - box[0], box[3] - box[1]) / w
            if not lo <= side <= hi:
                raise Fail(f"shape_wrong_size: {r.name} is {side:.3f} of the canvas, not {g['size']}")
            if g.get("position") and cell(box, w, h) != g["position"]:
                raise Fail(f"shape_wrong_position: {r.name} is {cell(box, w, h)}")
        dominant = _dominant(img, names[0].mask)
        if max(abs(int(a) - int(b)) for a, b in zip(dominant, g["rgb"])) > 3:
            raise Fail(f"shape_wrong_colour: {names[0].name} is {tuple(int(v) for v in dominant)}")
        found = _blobs(img, g["rgb"])
        want = sum(int(x["count"]) for x in s.meta["groups"] if x["colour"] == g["colour"])
        if found != want:
            raise Fail(f"shape_count: {found} {g['colour']} blobs, instruction says {want}")
        says(s, f"{COUNT_WORDS[int(g['count'])]} {g['size']} {g['colour']} {g['shape']}")


def _dominant(img: np.ndarray, mask: np.ndarray):
    """Most common colour inside a shape (its eroded core, away from blended edges)."""
    x0, y0, x1, y1 = box_px(mask)
    # Work on the shape's box (padded so erosion sees the true border), colours packed into
    # one integer: np.unique over rows of a full canvas was most of this check's time.
    x0, y0, x1, y1 = max(0, x0 - 1), max(0, y0 - 1), x1 + 1, y1 + 1
    m, px = mask[y0:y1, x0:x1], img[y0:y1, x0:x1, :3].astype(np.uint32)
    core = cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    sel = px[core if core.any() else m]
    values, counts = np.unique((sel[:, 0] << 16) | (sel[:, 1] << 8) | sel[:, 2], return_counts=True)
    v = int(values[np.argmax(counts)])
    return np.array([v >> 16, (v >> 8) & 255, v & 255], np.uint8)


def _blobs(img: np.ndarray, rgb) -> int:
    hit = rgb_match(img, rgb, 3).astype(np.uint8)
    hit = cv2.morphologyEx(hit, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(hit, connectivity=8)
    return int(np.count_nonzero(stats[1:, cv2.CC_STAT_AREA] >= MIN_BLOB))


def _relation_holds(a, b, rel: str) -> bool:
    overlap_y = a[1] < b[3] and b[1] < a[3]
    overlap_x = a[0] < b[2] and b[0] < a[2]
    return {"to the left of": a[2] <= b[0] and overlap_y, "to the right of": a[0] >= b[2] and overlap_y,
            "above": a[3] <= b[1] and overlap_x, "below": a[1] >= b[3] and overlap_x}[rel]


def check_layout(s: Sample) -> None:
    names = s.meta["objects"]
    masks = [mask_of(s, f"subject:{i}", "output") for i in range(len(names))]
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            if (masks[i] & masks[j]).any():
                raise Fail(f"objects_overlap: {names[i]} and {names[j]}")
    boxes = [box_px(m) for m in masks]
    for a, rel, b in s.meta["relations"]:
        if not _relation_holds(boxes[a], boxes[b], rel):
            raise Fail(f"relation_false: {names[a]} {rel} {names[b]}")
        says(s, f"{names[a]} {rel} ")
    says(s, *names)


def check_canny(s: Sample) -> None:
    cond, img = s.inputs[0].pixels, pixels(s, "output", 0)
    if cond.ndim != 2 or ((cond != 0) & (cond != 255)).any():
        raise Fail("condition_not_binary")
    again = cv2.Canny(np.ascontiguousarray(img), int(s.meta["canny_low"]), int(s.meta["canny_high"]),
                      apertureSize=int(s.meta["canny_aperture"]), L2gradient=bool(s.meta["canny_l2"]))
    edges = max(1, int(np.count_nonzero(cond)))
    off = int(np.count_nonzero(again != cond))
    if off > 0.005 * edges:
        raise Fail(f"canny_mismatch: {off}px of {edges} edge px")


def check_seg(s: Sample) -> None:
    seg = pixels(s, "input", 0)
    labels = s.meta["labels"]
    known = rgb_match(seg, s.meta["background_rgb"], 0)
    for i, lab in enumerate(labels):
        region = mask_of(s, f"subject:{i}", "output")
        hit = rgb_match(seg, lab["rgb"], 0)
        known |= hit
        outside = int(np.count_nonzero(hit & ~region))
        if outside:
            raise Fail(f"seg_outside_region: {outside}px of {lab['object']}")
        if np.count_nonzero(hit) < 0.5 * np.count_nonzero(region):
            raise Fail(f"seg_label_too_small: {lab['object']}")
        says(s, f"{lab['colour']} marks ", lab["object"])
    stray = int(np.count_nonzero(~known))
    if stray:
        raise Fail(f"seg_unknown_colour: {stray}px")


def check_subject(s: Sample) -> None:
    target = pixels(s, "output", 0)
    h, w = target.shape[:2]
    for i in range(len(s.inputs)):
        ref = pixels(s, "input", i)
        m_in, m_out = mask_of(s, f"subject:{i}", "input", i), mask_of(s, f"subject:{i}", "output")
        stray = int(np.count_nonzero(~rgb_match(ref, s.meta["neutral_rgb"], 0) & ~m_in))
        if stray:
            raise Fail(f"reference_not_neutral: {stray}px of <image {i + 1}>")
        a, b = box_px(m_in), box_px(m_out)
        size = (b[2] - b[0], b[3] - b[1])
        # Bring the reference object to the target's scale, then compare shape and colour.
        scaled = cv2.resize(m_in[a[1]:a[3], a[0]:a[2]].astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0.5
        crop_out = m_out[b[1]:b[3], b[0]:b[2]]
        off = beyond(scaled, crop_out) + beyond(crop_out, scaled)
        union = max(1, int(np.count_nonzero(scaled | crop_out)))
        if off > 0.1 * union:
            raise Fail(f"subject_shape_mismatch: <image {i + 1}> {100 * off / union:.0f}% of the shape differs")
        ref_small = cv2.resize(np.ascontiguousarray(ref[a[1]:a[3], a[0]:a[2]]), size, interpolation=cv2.INTER_AREA)
        core = cv2.erode((scaled & crop_out).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        if core.any():
            gap = float(np.median(cv2.absdiff(ref_small, target[b[1]:b[3], b[0]:b[2]]).max(axis=2)[core]))
            if gap > 24:
                raise Fail(f"subject_colour_mismatch: <image {i + 1}> differs by {gap:.0f}")
        if cell(b, w, h) != s.meta["positions"][i]:
            raise Fail(f"wrong_position: subject {i} is {cell(b, w, h)}")
        says(s, f"<image {i + 1}>")
