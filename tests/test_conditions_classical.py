"""Annotators that need no weights (canny, lineart-standard, seg from regions) on real photos."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
import skimage.data

from datagen.conditions import (
    PALETTE,
    Annotator,
    auto_thresholds,
    canny_map,
    make_annotator,
    normalise_depth,
    prepare_image,
    seg_map,
)
from datagen.images import ImageRejected
from datagen.schema import Picture, Region, Sample

PHOTOS = {
    "astronaut": skimage.data.astronaut(),
    "coffee": skimage.data.coffee(),
    "chelsea": skimage.data.chelsea(),
    "rocket": skimage.data.rocket(),
    "camera": skimage.data.camera(),  # greyscale HxW
}


def edge_density(m: np.ndarray) -> float:
    return float((m > 0).mean())


# --------------------------------------------------------------------------- canny
@pytest.mark.parametrize("photo", sorted(PHOTOS))
def test_canny_auto_gives_sparse_binary_edges_at_image_size(photo):
    img = PHOTOS[photo]
    (m,) = make_annotator("canny")([img])
    assert m.dtype == np.uint8 and m.shape == img.shape[:2]
    assert set(np.unique(m)) <= {0, 255}
    # Real photos: structure, not blank and not texture soup.
    assert 0.01 < edge_density(m) < 0.2, edge_density(m)


def test_canny_is_deterministic_across_instances():
    img = PHOTOS["coffee"]
    a = make_annotator("canny")([img])[0]
    b = make_annotator("canny")([img, PHOTOS["astronaut"]])[0]
    assert a.tobytes() == b.tobytes()


def test_canny_fixed_thresholds_lower_means_more_edges():
    img = PHOTOS["astronaut"]
    densities = [edge_density(make_annotator("canny", low=lo, high=hi)([img])[0]) for lo, hi in
                 [(30, 60), (100, 200), (200, 400)]]
    assert densities[0] > densities[1] > densities[2] > 0


def test_canny_auto_thresholds_follow_the_median_with_a_floor():
    mid = np.full((64, 64), 120, np.uint8)
    low, high = auto_thresholds(mid)
    assert low == int(0.67 * 120) and high == int(1.33 * 120)
    dark_low, dark_high = auto_thresholds(np.full((64, 64), 12, np.uint8))
    assert dark_low == 20 and dark_high >= 40  # floored: sensor noise is not an edge
    bright = auto_thresholds(np.full((64, 64), 250, np.uint8))
    assert bright[1] == 255 and bright[0] < bright[1]
    # the annotator reports what it used
    _, used = canny_map(PHOTOS["rocket"])
    assert used == auto_thresholds(cv2.cvtColor(cv2.GaussianBlur(PHOTOS["rocket"], (0, 0), 1.0), cv2.COLOR_RGB2GRAY))


def test_canny_sees_colour_edges_of_equal_brightness():
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, :32] = (255, 0, 0)  # red and this green have the same luma (~76)
    img[:, 32:] = (0, 130, 0)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    assert np.ptp(grey) <= 1
    (m,) = make_annotator("canny", low=50, high=100)([img])
    assert m[:, 30:34].any() and not m[:, :24].any() and not m[:, 40:].any()


def test_canny_rejects_half_given_thresholds():
    with pytest.raises(ValueError, match="both low and high"):
        make_annotator("canny", low=10)


# --------------------------------------------------------------------------- lineart standard
@pytest.mark.parametrize("photo", ["astronaut", "camera", "chelsea"])
def test_lineart_standard_lines_sit_on_edges(photo):
    img = PHOTOS[photo]
    (m,) = make_annotator("lineart_standard")([img])
    assert m.dtype == np.uint8 and m.shape == img.shape[:2]
    assert m.max() > 200 and m.min() == 0
    edges = cv2.dilate(make_annotator("canny")([img])[0], np.ones((5, 5), np.uint8)) > 0
    # strokes are where the photo has edges: far brighter there than in flat areas
    assert m[edges].mean() > 3 * m[~edges].mean()


def test_lineart_standard_draws_a_dark_stroke_and_nothing_on_blank_paper():
    paper = np.full((200, 300, 3), 255, np.uint8)
    assert not make_annotator("lineart_standard")([paper])[0].any()
    cv2.line(paper, (20, 100), (280, 100), (0, 0, 0), 3)
    (m,) = make_annotator("lineart_standard")([paper])
    assert m[99:102, 40:260].min() > 100  # on the stroke
    assert m[:80].max() == 0 and m[120:].max() == 0  # away from it


def test_lineart_standard_is_deterministic():
    img = PHOTOS["rocket"]
    first, second = make_annotator("lineart_standard")([img]), make_annotator("lineart_standard")([img])
    assert first[0].tobytes() == second[0].tobytes()


# --------------------------------------------------------------------------- awkward inputs
@pytest.mark.parametrize("name", ["canny", "lineart_standard"])
def test_grey_rgba_tiny_and_odd_sized_images_are_normalised(name):
    ann = make_annotator(name)
    logo = skimage.data.logo()  # RGBA with transparent background
    assert logo.shape[2] == 4
    odd = PHOTOS["chelsea"][:17, :23]
    maps = ann([PHOTOS["camera"], logo, odd, PHOTOS["astronaut"][:, :, :1]])
    assert [m.shape for m in maps] == [(512, 512), logo.shape[:2], (17, 23), (512, 512)]
    assert all(m.dtype == np.uint8 for m in maps)
    # transparency is composited over white, so the logo's silhouette is structure
    assert maps[1].any()


@pytest.mark.parametrize(
    "bad, reason",
    [
        (np.zeros((8, 8, 3), np.uint8), "too_small"),
        (np.zeros((16, 300, 3), np.uint8), "extreme_aspect"),
        (np.zeros((64, 64, 3), np.float32), "unsupported_pixels"),
        (np.zeros((64, 64, 2), np.uint8), "unsupported_pixels"),
    ],
)
def test_unusable_images_are_rejects_with_reasons(bad, reason):
    ann = make_annotator("canny")
    with pytest.raises(ImageRejected) as err:
        ann([bad])
    assert err.value.reason == reason
    good = PHOTOS["coffee"]
    out = ann.try_annotate([good, bad, good])
    assert isinstance(out[1], ImageRejected) and out[1].reason == reason
    assert out[0].tobytes() == out[2].tobytes() == ann([good])[0].tobytes()


class BrightnessAnnotator(Annotator):
    """A real (if trivial) annotator that cannot handle very dark images."""

    name = kind = "brightness"

    def _annotate(self, images):
        if any(img.mean() < 10 for img in images):
            raise RuntimeError("too dark to annotate")
        return [img.max(axis=2) for img in images]


def test_try_annotate_isolates_a_failing_image_but_raises_when_all_fail():
    dark = np.zeros((64, 64, 3), np.uint8)
    out = BrightnessAnnotator().try_annotate([PHOTOS["coffee"], dark, PHOTOS["chelsea"]])
    assert isinstance(out[0], np.ndarray) and isinstance(out[2], np.ndarray)
    assert isinstance(out[1], ImageRejected) and out[1].reason == "annotator_error"
    assert "too dark" in out[1].detail
    with pytest.raises(RuntimeError, match="too dark"):  # a broken annotator is not bad data
        BrightnessAnnotator().try_annotate([dark, dark])


def test_depth_normalisation_spans_the_range_and_flat_predictions_are_black():
    ramp = np.linspace(-3.0, 7.0, 64 * 48, dtype=np.float32).reshape(48, 64)
    m = normalise_depth(ramp)
    assert m.dtype == np.uint8 and m.min() == 0 and m.max() == 255 and (np.diff(m.ravel().astype(int)) >= 0).all()
    assert not normalise_depth(np.full((8, 8), 2.5, np.float32)).any()
    ramp[3, 3] = np.nan
    assert not normalise_depth(ramp).any()


def test_prepare_image_shrinks_to_max_side_keeping_aspect():
    img = prepare_image(PHOTOS["coffee"], max_side=300)
    assert img.shape == (200, 300, 3)
    assert prepare_image(PHOTOS["coffee"]).shape == (400, 600, 3)


def test_importing_conditions_loads_no_heavy_dependency():
    code = ("import sys, datagen.conditions; "
            "print(sorted(m for m in ('torch', 'controlnet_aux', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------- seg from regions
def disk(h: int, w: int, cy: int, cx: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_palette_is_fixed_black_first_and_distinct():
    assert PALETTE.shape == (256, 3) and PALETTE.dtype == np.uint8
    assert PALETTE[0].tolist() == [0, 0, 0]
    assert len({tuple(c) for c in PALETTE}) == 256
    assert PALETTE[1:].max(axis=1).min() >= 150  # every instance colour is clearly visible


def test_seg_map_paints_instances_in_order_over_black():
    h, w = 120, 160
    a, b = disk(h, w, 60, 60, 40), disk(h, w, 60, 100, 40)  # overlapping
    m = seg_map([a, b], h, w)
    assert m.shape == (h, w, 3) and m.dtype == np.uint8
    assert (m[~(a | b)] == 0).all()
    assert (m[a & ~b] == PALETTE[1]).all()
    assert (m[b] == PALETTE[2]).all()  # the later region is on top, as in a collage
    assert seg_map([a, b], h, w).tobytes() == m.tobytes()


def test_seg_regions_annotator_reads_collage_records():
    img = PHOTOS["astronaut"]
    h, w = img.shape[:2]
    horse = cv2.resize(skimage.data.horse().astype(np.uint8), (200, 164), interpolation=cv2.INTER_NEAREST) == 0
    horse_mask = np.zeros((h, w), bool)
    horse_mask[300:464, 250:450] = horse
    sample = Sample(
        task="edit.add", instruction="Add a horse to <image 1>.",
        inputs=[Picture(img, "source")], outputs=[Picture(img, "target")],
        regions=[
            Region("subject:0", "output", 0, disk(h, w, 150, 150, 60)),
            Region("added", "output", 0, horse_mask),
            Region("subject:1", "output", 0, None, (0.0, 0.0, 0.5, 0.5)),  # box only: not a mask
            Region("removed", "input", 0, disk(h, w, 400, 100, 50)),  # other image
        ],
    )
    (m,) = make_annotator("seg_regions")([sample])
    assert m.shape == (h, w, 3)
    assert (m[disk(h, w, 150, 150, 60)] == PALETTE[1]).all()
    assert (m[horse_mask] == PALETTE[2]).all()
    assert (m[disk(h, w, 400, 100, 50)] == 0).all()
    only_subjects = make_annotator("seg_regions", names=["subject:"])([sample])[0]
    assert not only_subjects[horse_mask].any()
    cv2.imwrite("/tmp/test_conditions_seg.png", cv2.cvtColor(np.hstack([img, m]), cv2.COLOR_RGB2BGR))

    broken = Sample(task="x", instruction="", inputs=[], outputs=[Picture(img, "target")],
                    regions=[Region("subject:0", "output", 0, np.ones((10, 10), bool))])
    out = make_annotator("seg_regions").try_annotate([sample, broken])
    assert isinstance(out[0], np.ndarray)
    assert isinstance(out[1], ImageRejected) and out[1].reason == "region_mismatch"
