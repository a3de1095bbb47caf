"""Subject tasks with references that are not copies (edit.subject(s), ref.canvas, ref.subject(s)_varied):
records, exact regions on both sides, what makes a reference different, and the checker's teeth."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from datagen.collage import CollageSpec, check, generate, starter_pack
from datagen.rng import sample_rng
from datagen.schema import Sample, from_row, to_row

SIZE = 128
NEW = ("edit.subject", "edit.subjects", "ref.canvas", "ref.subject_varied", "ref.subjects_varied")


@pytest.fixture(scope="module")
def pack():
    return starter_pack()


def make(task: str, pack, index: int = 0, size: int = SIZE, **spec) -> Sample:
    s = generate(CollageSpec(task=task, size=size, assets=pack, **spec), sample_rng(31, index))
    assert isinstance(s, Sample), s
    return from_row(to_row(s))  # what storage gives back


def region(s: Sample, name: str, side: str):
    return next(r for r in s.regions if r.name == name and r.side == side)


@pytest.mark.parametrize("task", NEW)
def test_inputs_regions_and_references(task, pack):
    for i in range(4):
        s = make(task, pack, i)
        refs = s.meta["references"]
        n = len(refs)
        assert {"edit.subject": {1}, "ref.subject_varied": {1}, "edit.subjects": {2, 3},
                "ref.subjects_varied": {2, 3}, "ref.canvas": {1, 2, 3}}[task] >= {n}
        first = 0 if task.startswith("ref.subject") else 1
        roles = [p.role for p in s.inputs]
        assert roles == {0: [], 1: ["canvas" if task == "ref.canvas" else "source"]}[first] + ["reference"] * n
        assert len(set(s.meta["positions"])) == n  # two subjects never share a position word
        for k, info in enumerate(refs):
            assert info["input"] == first + k and f"<image {first + k + 1}>" in s.instruction
            m_in, m_out = region(s, f"subject:{k}", "input").mask, region(s, f"subject:{k}", "output").mask
            assert region(s, f"subject:{k}", "input").image == first + k and m_in.any() and m_out.any()
            # Not a copy: larger, turned or mirrored, relit.
            assert 1.3 <= info["scale"] <= 3.0 and 10 <= abs(info["angle_deg"]) <= 40
            assert max(abs(g - 1) for g in info["gains"]) >= 0.1
            assert all(isinstance(g, int) for g in info["gains_256"])  # exact: the integers relighting used
            assert np.allclose(info["gains"], np.asarray(info["gains_256"]) / 256, rtol=1e-5)
            # Zero padding outside the crop, and the crop is a true crop on one axis.
            x0, y0, x1, y1 = info["crop_px"]
            ref = s.inputs[first + k].pixels
            assert (x1 - x0 < SIZE) != (y1 - y0 < SIZE)
            outside = np.ones((SIZE, SIZE), bool)
            outside[y0:y1, x0:x1] = False
            assert not ref[outside].any()
            assert np.count_nonzero(m_in) > 1.5 * np.count_nonzero(m_out)
        assert check(s) is None


def test_edit_subject_changes_only_the_inserted_subjects(pack):
    for task in ("edit.subject", "edit.subjects"):
        s = make(task, pack, 2)
        before, after = s.inputs[0].pixels, s.outputs[0].pixels
        added = np.any([r.mask for r in s.regions if r.side == "output"], axis=0)
        assert np.array_equal(before[~added], after[~added])
        assert (np.abs(before.astype(int) - after.astype(int)).max(axis=2)[added] > 0).mean() > 0.5
        for name in s.meta["subjects"]:
            assert name not in s.meta["others"]  # "the X from <image 2>" is unique in the scene


def test_canvas_is_blank_and_at_least_one_reference(pack):
    for i in range(6):
        s = make("ref.canvas", pack, i)
        blank = s.inputs[0].pixels
        assert blank.shape == s.outputs[0].pixels.shape and (blank == s.meta["canvas_rgb"]).all()
        assert "<image 1>" in s.instruction and len(s.inputs) >= 2


def test_deterministic_and_sizes(pack):
    for task in NEW:
        a, b = to_row(make(task, pack, 5)), to_row(make(task, pack, 5))
        assert a == b
    for size in (64, 256):
        for task in NEW:
            assert check(make(task, pack, 1, size=size)) is None, (task, size)


def test_checker_catches_a_copy_paste_reference(pack):
    s = make("ref.subject_varied", pack, 3)
    m_out = region(s, "subject:0", "output").mask
    # The honest copy-paste reference: the target's pixels moved, same size, no relighting.
    ref = np.full_like(s.outputs[0].pixels, 255)
    dx = 7
    ref[:, dx:][m_out[:, :-dx]] = s.outputs[0].pixels[:, :-dx][m_out[:, :-dx]]
    copied = copy.deepcopy(s)
    copied.inputs[0].pixels = ref
    region(copied, "subject:0", "input").mask = np.roll(m_out, dx, axis=1)
    copied.meta["references"][0] |= {"affine": [[1.0, 0.0, dx], [0.0, 1.0, 0.0]], "gains_256": [256, 256, 256],
                                     "crop_px": [0, 0, SIZE, SIZE], "neutral_rgb": [255, 255, 255]}
    assert check(copied).startswith("reference_is_a_copy")


def test_checker_catches_lies_about_the_reference(pack):
    s = make("edit.subjects", pack, 4)
    gains = copy.deepcopy(s)
    gains.meta["references"][0]["gains_256"] = [512, 77, 512]  # claims another relighting
    assert check(gains).startswith("subject_colour_mismatch")
    moved = copy.deepcopy(s)
    moved.meta["references"][1]["affine"][0][2] += 9  # claims the subject sits elsewhere
    assert check(moved).startswith("subject_shape_mismatch")
    swapped = copy.deepcopy(s)
    swapped.inputs[1], swapped.inputs[2] = swapped.inputs[2], swapped.inputs[1]  # references of the other subject
    assert check(swapped) is not None
    padded = copy.deepcopy(s)
    x0, y0, x1, y1 = padded.meta["references"][0]["crop_px"]
    padded.inputs[1].pixels[0 if y0 else -1, 0 if x0 else -1] = (9, 9, 9)  # a pixel of the padding
    assert check(padded).startswith("reference_backdrop")
    outside = copy.deepcopy(s)
    added = np.any([r.mask for r in s.regions if r.side == "output"], axis=0)
    ys, xs = np.nonzero(~added)
    outside.outputs[0].pixels[ys[0], xs[0]] ^= 255
    assert check(outside) == "diff_outside_region: 1px"
    blank = make("ref.canvas", pack, 1)
    blank.inputs[0].pixels[5, 5] = (0, 0, 0)
    assert check(blank) == "canvas_not_blank: 1px"


def test_edit_add_on_blank_canvases_by_default(pack):
    blank = [make("edit.add", pack, i).meta["background"] for i in range(12)]
    assert all(b.startswith("plain ") for b in blank)
    anywhere = [make("edit.add", pack, i, add_background="any").meta["background"] for i in range(24)]
    assert any(not b.startswith(("plain ", "vertical ", "horizontal ")) for b in anywhere)  # pack photos too
    with pytest.raises(ValueError, match="add_background"):
        CollageSpec(task="edit.add", assets=pack, add_background="photos")
