"""The independent checker: `check(sample) -> None | "short_reason: detail"`.

It looks only at a sample's pixels, regions and meta (as decoded from stored bytes) and
never calls generator code. For edits it proves that the pixels that differ between input
and output are exactly the named region(s); for drags that the output mask is the input
mask moved by the stated affine and that each written handle point lands on the object;
for multi-turn chains the same, turn by turn; for subject references that are not copies,
that the stated affine and gains map each reference onto its target (`checker_subjects`).
Tolerances, and why:
- outside the named region: 0 differing pixels (compositing leaves them byte-identical);
- inside it: >= 50% of pixels changed (the generator redraws below 60% visible change);
- drag geometry: the input mask moved by the meta affine and the output mask agree to
  within 1 px everywhere (resampling may move an alpha > 0 edge by one pixel; at most 1% of
  the object may be further off), at every canvas size; handle targets within 1 px of the
  affine image of the point, written to 2 decimals (+-0.005).
"""

from __future__ import annotations

import re

import cv2
import numpy as np

from datagen.collage import checker_render as render
from datagen.collage import checker_subjects as subjects
from datagen.collage.checker_pixels import (
    Fail,
    beyond,
    box_px,
    cell,
    changed,
    edit_area,
    mask_of,
    mostly_changed,
    only_inside,
    pixels,
    regions,
    says,
)
from datagen.portable import portable_cv
from datagen.schema import InvalidSample, Sample, validate

POINT = re.compile(r"\((-?\d+\.\d+), (-?\d+\.\d+)\) by \(([+-]\d+\.\d+), ([+-]\d+\.\d+)\)")


def _single_edit(sample: Sample, before_name: str | None, after_name: str | None) -> None:
    src, dst = pixels(sample, "input", 0), pixels(sample, "output", 0)
    h, w = src.shape[:2]
    before = mask_of(sample, before_name, "input") if before_name else np.zeros((h, w), bool)
    after = mask_of(sample, after_name, "output") if after_name else np.zeros((h, w), bool)
    diff = changed(src, dst)
    only_inside(diff, before | after)
    mostly_changed(diff, before | after if sample.task == "edit.replace" else edit_area(before, after))


def _named_position(sample: Sample, mask: np.ndarray) -> None:
    h, w = mask.shape
    got = cell(box_px(mask), w, h)
    if got != sample.meta["position"]:
        raise Fail(f"wrong_position: object is {got}, meta says {sample.meta['position']}")


def check_add(s: Sample) -> None:
    _single_edit(s, None, "added")
    _named_position(s, mask_of(s, "added", "output"))
    says(s, s.meta["object"])


def check_remove(s: Sample) -> None:
    _single_edit(s, "removed", None)
    _named_position(s, mask_of(s, "removed", "input"))
    says(s, s.meta["object"])


def check_replace(s: Sample) -> None:
    _single_edit(s, "replaced", "replacement")
    old, new = box_px(mask_of(s, "replaced", "input")), box_px(mask_of(s, "replacement", "output"))
    drift = max(abs(old[0] + old[2] - new[0] - new[2]), abs(old[1] + old[3] - new[1] - new[3])) / 2.0
    if drift > 0.03 * s.outputs[0].width:
        raise Fail(f"replacement_moved: centre {drift:.1f}px away")
    says(s, s.meta["object"], s.meta["replacement"])


def check_drag(s: Sample) -> None:
    _single_edit(s, "object", "object")
    before, after = mask_of(s, "object", "input"), mask_of(s, "object", "output")
    h, w = before.shape
    m = np.asarray(s.meta["affine"], np.float64)
    # meta affine is in continuous pixels (pixel i spans [i, i+1)); warpAffine wants indices.
    index_map = m.copy()
    index_map[:, 2] += m[:, :2] @ [0.5, 0.5] - 0.5
    moved = cv2.warpAffine(before.astype(np.uint8), index_map, (w, h), flags=cv2.INTER_NEAREST) > 0
    off = (beyond(moved, after) + beyond(after, moved)) / max(1, np.count_nonzero(moved | after))
    if off > 0.01:
        raise Fail(f"drag_geometry: {100 * off:.1f}% of the object is > 1px from where the affine puts it")
    linear = m[:, :2]
    if s.task == "drag.translate" and not np.allclose(linear, np.eye(2), atol=1e-6):
        raise Fail("drag_not_translation")
    if s.task == "drag.scale" and abs(np.sqrt(abs(np.linalg.det(linear))) - s.meta["scale"]) > 0.03 * s.meta["scale"]:
        raise Fail("drag_scale_mismatch")
    if s.task == "drag.rotate":
        angle = np.degrees(np.arctan2(-linear[1, 0], linear[0, 0]))
        if abs(angle - s.meta["angle"]) > 1.0:
            raise Fail(f"drag_angle_mismatch: {angle:.1f} vs {s.meta['angle']}")
    written = [tuple(float(v) for v in p) for p in POINT.findall(s.instruction)]
    points = s.meta["points"]
    if len(written) != len(points) or not points:
        raise Fail(f"drag_points: instruction has {len(written)}, meta has {len(points)}")
    grow = cv2.dilate(after.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    for (x, y, dx, dy), text in zip(points, written):
        if max(abs(a - b) for a, b in zip((x, y, dx, dy), text)) > 0.005 + 1e-9:
            raise Fail(f"drag_point_text: {text} vs meta {(x, y, dx, dy)}")
        px, py = x * w, y * h
        if not before[min(int(py), h - 1), min(int(px), w - 1)]:
            raise Fail(f"drag_point_off_object: ({x}, {y})")
        tx, ty = (x + dx) * w, (y + dy) * h
        ax, ay = m @ [px, py, 1.0]
        if max(abs(ax - tx), abs(ay - ty)) > 1.0:
            raise Fail(f"drag_target_off_affine: ({tx:.1f}, {ty:.1f}) vs ({ax:.1f}, {ay:.1f})")
        if not (0 <= tx < w and 0 <= ty < h) or not grow[int(ty), int(tx)]:
            raise Fail(f"drag_target_off_object: ({x + dx:.3f}, {y + dy:.3f})")


def check_inpaint(s: Sample) -> None:
    holed, full = pixels(s, "input", 0), pixels(s, "output", 0)
    mask_img = s.inputs[1].pixels if len(s.inputs) > 1 else None
    if mask_img is None or mask_img.ndim != 2 or ((mask_img != 0) & (mask_img != 255)).any():
        raise Fail("mask_input_not_binary")
    hole = mask_img > 127
    if not np.array_equal(hole, mask_of(s, "hole", "input")):
        raise Fail("hole_region_mismatch")
    wrong_fill = int(np.count_nonzero(np.any(holed[hole] != np.asarray(s.meta["fill_rgb"], np.uint8), axis=1)))
    if wrong_fill:
        raise Fail(f"hole_not_filled: {wrong_fill}px")
    only_inside(changed(holed, full), hole, "hole")
    says(s, "<image 1>", "<image 2>")


def check_outpaint(s: Sample) -> None:
    crop, full = pixels(s, "input", 0), pixels(s, "output", 0)
    x0, y0, x1, y1 = s.meta["crop_px"]
    h, w = full.shape[:2]
    if crop.shape[:2] != (y1 - y0, x1 - x0):
        raise Fail(f"crop_size: {crop.shape[:2]} vs meta {(y1 - y0, x1 - x0)}")
    bad = int(np.count_nonzero(changed(crop, full[y0:y1, x0:x1])))
    if bad:
        raise Fail(f"crop_mismatch: {bad}px")
    d = s.meta["direction"]
    edges = {"right": x0 == 0 and x1 < w and (y0, y1) == (0, h), "left": x1 == w and x0 > 0 and (y0, y1) == (0, h),
             "down": y0 == 0 and y1 < h and (x0, x1) == (0, w), "up": y1 == h and y0 > 0 and (x0, x1) == (0, w),
             "horizontal": 0 < x0 and x1 < w and (y0, y1) == (0, h), "vertical": 0 < y0 and y1 < h and (x0, x1) == (0, w),
             "all": 0 < x0 and x1 < w and 0 < y0 and y1 < h}
    if not edges.get(d, False):
        raise Fail(f"crop_direction: {d} with crop {s.meta['crop_px']}")
    if box_px(mask_of(s, "known", "output")) != (x0, y0, x1, y1):
        raise Fail("known_region_mismatch")
    says(s, f"{round(100 * (x1 - x0) / w) if d not in ('up', 'down', 'vertical') else round(100 * (y1 - y0) / h)}%")


def check_seg_mask(s: Sample) -> None:
    src, dst = pixels(s, "input", 0), pixels(s, "output", 0)
    mask = mask_of(s, "target", "input")
    only_inside(changed(src, dst), mask)
    want = (src[mask].astype(np.int16) + np.asarray(s.meta["rgb"], np.int16) + 1) // 2
    off = int(np.count_nonzero(np.abs(dst[mask].astype(np.int16) - want).max(axis=1) > 1))
    if off:
        raise Fail(f"overlay_wrong: {off}px")
    says(s, s.meta["object"], s.meta["colour"])


def check_det_box(s: Sample) -> None:
    src, dst = pixels(s, "input", 0), pixels(s, "output", 0)
    h, w = src.shape[:2]
    x0, y0, x1, y1 = box_px(mask_of(s, "target", "input"))
    g, t = int(s.meta["gap"]), int(s.meta["thickness"])
    band = np.zeros((h, w), bool)
    band[max(0, y0 - g - t): y1 + g + t, max(0, x0 - g - t): x1 + g + t] = True
    band[max(0, y0 - g): y1 + g, max(0, x0 - g): x1 + g] = False
    only_inside(changed(src, dst), band, "box")
    off = int(np.count_nonzero(np.any(dst[band] != np.asarray(s.meta["rgb"], np.uint8), axis=1)))
    if off:
        raise Fail(f"box_outline_wrong: {off}px")
    if not np.array_equal(band, mask_of(s, "box", "output")):
        raise Fail("box_region_mismatch")
    says(s, s.meta["object"], s.meta["colour"])


def check_multiturn(s: Sample) -> None:
    turns = s.meta["turns"]
    if len(s.outputs) != len(turns) or not 2 <= len(turns) <= 4:
        raise Fail(f"turn_count: {len(s.outputs)} outputs for {len(turns)} turns")
    for k in range(1, len(turns) + 1):
        prev_side, prev_i = ("input", 0) if k == 1 else ("output", k - 2)
        src, dst = pixels(s, prev_side, prev_i), pixels(s, "output", k - 1)
        h, w = src.shape[:2]
        before = [r.mask for r in regions(s, f"turn {k}", prev_side, prev_i)]
        after = [r.mask for r in regions(s, f"turn {k}", "output", k - 1)]
        if not before and not after:
            raise Fail(f"missing_region: 'turn {k}'")
        b = before[0] if before else np.zeros((h, w), bool)
        a = after[0] if after else np.zeros((h, w), bool)
        diff = changed(src, dst)
        turn = turns[k - 1]
        try:
            only_inside(diff, a | b)
            mostly_changed(diff, edit_area(b, a))
            if turn.get("position") and cell(box_px(a), w, h) != turn["position"]:
                raise Fail(f"wrong_position: {cell(box_px(a), w, h)}, said {turn['position']}")
        except Fail as exc:
            raise Fail(f"turn {k}: {exc}") from None
        says(s, f"Turn {k}: {turn['text']}", turn["object"])


CHECKS = {
    "edit.add": check_add, "edit.remove": check_remove, "edit.replace": check_replace,
    "drag.translate": check_drag, "drag.scale": check_drag, "drag.rotate": check_drag,
    "inpaint": check_inpaint, "outpaint": check_outpaint, "seg.mask": check_seg_mask, "det.box": check_det_box,
    "edit.multiturn": check_multiturn, "t2i.text": render.check_text, "t2i.shapes": render.check_shapes,
    "t2i.layout": render.check_layout, "ref.canny": render.check_canny, "ref.seg": render.check_seg,
    "ref.subject": render.check_subject, "edit.subject": subjects.check_edit_subject,
    "edit.subjects": subjects.check_edit_subject, "ref.canvas": subjects.check_canvas,
    "ref.subject_varied": subjects.check_varied, "ref.subjects_varied": subjects.check_varied,
}


def check(sample: Sample) -> str | None:
    """None when the sample is exactly what its instruction says, else a short reason."""
    if not isinstance(sample, Sample):
        return f"not_a_sample: {type(sample).__name__}"
    fn = CHECKS.get(sample.task)
    if fn is None:
        return f"unknown_task: {sample.task}"
    try:
        validate(sample)
        for k in range(1, len(sample.inputs) + 1):
            if f"<image {k}>" not in sample.instruction:
                raise Fail(f"input_not_referenced: <image {k}>")
        with portable_cv():  # keep/reject must not depend on the CPU's SIMD level
            fn(sample)
    except InvalidSample as exc:
        return f"invalid: {exc}"
    except Fail as exc:
        return str(exc)
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
        return f"malformed: {type(exc).__name__}: {exc}"
    return None
