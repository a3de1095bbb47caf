"""The independent checker catches real defects in otherwise good samples."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest

from datagen.collage import CollageSpec, check, generate, starter_pack
from datagen.rng import sample_rng
from datagen.schema import Sample, from_row, to_row

SIZE = 128


@pytest.fixture(scope="module")
def pack():
    return starter_pack()


def good(task: str, pack, index: int = 0) -> Sample:
    s = generate(CollageSpec(task=task, size=SIZE, assets=pack), sample_rng(77, index))
    assert isinstance(s, Sample)
    s = from_row(to_row(s))  # corrupt what storage returns, as an audit would see it
    assert check(s) is None
    return copy.deepcopy(s)


def region(s: Sample, name: str, side: str | None = None):
    return next(r for r in s.regions if r.name == name and (side is None or r.side == side))


def outside_pixel(mask: np.ndarray) -> tuple[int, int]:
    ys, xs = np.nonzero(~mask)
    return int(ys[len(ys) // 2]), int(xs[len(xs) // 2])


def test_object_shifted_by_one_pixel(pack):
    s = good("edit.add", pack)
    mask = region(s, "added").mask
    before, after = s.inputs[0].pixels, s.outputs[0].pixels
    moved = before.copy()
    shifted = np.roll(mask, 1, axis=1)
    moved[shifted] = np.roll(after, 1, axis=1)[shifted]  # the same object, one pixel to the right
    s.outputs[0].pixels = moved
    assert check(s).startswith("diff_outside_region")


def test_pixel_recoloured_outside_region(pack):
    for task, name in (("edit.remove", "removed"), ("drag.rotate", "object"), ("seg.mask", "target")):
        s = good(task, pack)
        allowed = np.zeros((SIZE, SIZE), bool)
        for r in s.regions:
            if r.name == name:
                allowed |= r.mask
        y, x = outside_pixel(allowed)
        s.outputs[0].pixels[y, x] = 255 - s.outputs[0].pixels[y, x]
        assert check(s) == "diff_outside_region: 1px", task


def test_dropped_region(pack):
    s = good("edit.replace", pack)
    s.regions = [r for r in s.regions if r.name != "replacement"]
    assert check(s).startswith("missing_region")


def test_remove_that_leaves_the_object(pack):
    s = good("edit.remove", pack)
    s.outputs[0].pixels = s.inputs[0].pixels.copy()
    assert check(s).startswith("region_unchanged")


def test_wrong_count_in_meta_and_erased_shape(pack):
    s = good("t2i.shapes", pack, 1)
    g = s.meta["groups"][0]
    wrong = copy.deepcopy(s)
    wrong.meta["groups"][0]["count"] = g["count"] + 1
    assert check(wrong).startswith(("shape_regions", "shape_count", "instruction_missing"))
    # Erase one drawn shape but keep its region: only counting the pixels can notice.
    erased = copy.deepcopy(s)
    r = next(r for r in erased.regions if r.name.startswith(f"{g['colour']} {g['shape']} "))
    y, x = outside_pixel(np.zeros((SIZE, SIZE), bool) | np.any([q.mask for q in erased.regions], axis=0))
    erased.outputs[0].pixels[r.mask] = erased.outputs[0].pixels[y, x]
    assert check(erased).startswith(("shape_count", "shape_wrong_colour"))


def test_drag_point_and_affine_lies(pack):
    s = good("drag.translate", pack, 2)
    lie = copy.deepcopy(s)
    lie.meta["points"][0][2] += 0.05  # meta says the point moves further than the text/pixels
    assert check(lie).startswith("drag_point_text")
    geo = copy.deepcopy(s)
    geo.meta["affine"][0][2] += 6  # claims a different move than the pixels show
    assert check(geo).startswith(("drag_geometry", "drag_target"))
    text = copy.deepcopy(s)
    x = s.meta["points"][0][0]
    text.instruction = re.sub(r"\((\d\.\d\d), ", f"({(x + 0.1) % 1:.2f}, ", text.instruction, count=1)
    assert check(text).startswith("drag_point_text")


def test_false_relation(pack):
    s = good("t2i.layout", pack, 3)
    a, rel, b = s.meta["relations"][0]
    flipped = {"to the left of": "to the right of", "to the right of": "to the left of",
               "above": "below", "below": "above"}[rel]
    s.meta["relations"][0] = [a, flipped, b]
    assert check(s).startswith("relation_false")


def test_canny_condition_not_from_target(pack):
    s = good("ref.canny", pack)
    s.inputs[0].pixels = np.roll(s.inputs[0].pixels, 2, axis=0)
    assert check(s).startswith("canny_mismatch")


def test_seg_label_bleeds(pack):
    s = good("ref.seg", pack)
    lab = s.meta["labels"][0]
    seg = s.inputs[0].pixels
    outside = ~region(s, "subject:0").mask
    y, x = outside_pixel(~outside)
    seg[y, x] = lab["rgb"]
    assert check(s).startswith("seg_outside_region")


def test_overlay_and_box_defects(pack):
    s = good("seg.mask", pack)
    mask = region(s, "target", "output").mask
    s.outputs[0].pixels[mask] = s.inputs[0].pixels[mask]  # overlay missing
    assert check(s).startswith("overlay_wrong")
    b = good("det.box", pack)
    b.outputs[0].pixels = np.roll(b.outputs[0].pixels, 1, axis=0)  # box one pixel low
    assert check(b) is not None


def test_inpaint_and_outpaint_defects(pack):
    s = good("inpaint", pack)
    hole = s.inputs[1].pixels > 127
    y, x = outside_pixel(hole)
    s.outputs[0].pixels[y, x] = 255 - s.outputs[0].pixels[y, x]
    assert check(s).startswith("diff_outside_hole")
    m = good("inpaint", pack)
    m.inputs[1].pixels = np.roll(m.inputs[1].pixels, 3, axis=1)
    assert check(m) is not None
    o = good("outpaint", pack)
    o.inputs[0].pixels = np.ascontiguousarray(o.inputs[0].pixels[:, ::-1])
    assert check(o).startswith("crop_mismatch")


def test_multiturn_states_out_of_order(pack):
    s = good("edit.multiturn", pack, 4)
    s.outputs = s.outputs[::-1]
    assert check(s).startswith("turn ")


def test_text_in_wrong_colour(pack):
    s = good("t2i.text", pack)
    mask = region(s, "text").mask
    s.outputs[0].pixels[mask] = 255 - s.outputs[0].pixels[mask]
    assert check(s).startswith("text_colour_missing")


def test_subject_reference_of_another_object(pack):
    s = good("ref.subject", pack, 5)
    other = good("ref.subject", pack, 6)
    s.inputs[0] = other.inputs[0]
    assert check(s) is not None


def test_malformed_and_unknown(pack):
    s = good("edit.add", pack)
    del s.meta["position"]
    assert check(s).startswith("malformed")
    s.task = "edit.unknown"
    assert check(s).startswith("unknown_task")
