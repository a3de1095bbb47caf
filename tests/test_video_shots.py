"""Shot boundaries on a clip with real cuts; pairs stay inside shots, transitions cross them."""

from __future__ import annotations

import cv2
import pytest

from datagen.rng import sample_rng
from datagen.video import VideoPairsConfig, process_video
from datagen.video import synthetic as S
from datagen.video.motion import estimate_motion
from datagen.video.shots import colour_histogram, hist_distance, judge_cut, shot_ids

try:
    from tests import videos as V
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    import videos as V


def pairs_config(**changes) -> VideoPairsConfig:
    """The product config; `videos` (the folder the product lists) is not read by process_video."""
    return VideoPairsConfig(videos="-", **changes)

SHOT_S = 2.0


@pytest.fixture(scope="module")
def cut_video(tmp_path_factory):
    path, cuts = V.cut_clip(tmp_path_factory.mktemp("cuts") / "cuts.mp4", shot_s=SHOT_S)
    config = pairs_config(anchor_every_s=0.5, stitched_pairs=0)
    samples, rejects = process_video(path, config, sample_rng(3, 0))
    return cuts, samples, rejects


def true_shot(t: float) -> int:
    return int(t // SHOT_S)


def test_every_cut_is_found_once_and_nothing_else(cut_video):
    cuts, samples, rejects = cut_video
    found = [x.meta for x in samples + rejects if x.meta.get("kind") == "cut"]
    assert len(found) == len(cuts)
    for c, m in zip(cuts, sorted(found, key=lambda m: m["t_a"])):
        assert m["t_a"] < c <= m["t_b"] + 1e-6
        assert m["t_b"] - m["t_a"] <= 0.5 + 0.05  # neighbours on the 2 fps grid
        assert m["shot_b"] == m["shot_a"] + 1


def test_pairs_never_cross_a_cut(cut_video):
    _, samples, rejects = cut_video
    pairs = [x.meta for x in samples + rejects if x.meta.get("kind") == "pair"]
    assert len([s for s in samples if s.meta["kind"] == "pair"]) >= 6
    for m in pairs:
        assert true_shot(m["t_a"]) == true_shot(m["t_b"]), m
        assert m["shot_a"] == m["shot_b"]
        assert 0.5 - 0.05 <= m["gap_s"] <= 2.0 + 0.05


def test_transitions_are_their_own_task(cut_video):
    _, samples, _ = cut_video
    kinds = {(s.task, s.meta["kind"]) for s in samples}
    assert ("video.transition", "cut") in kinds and ("video.pair", "pair") in kinds
    for s in samples:
        if s.task == "video.transition":
            assert true_shot(s.meta["t_a"]) != true_shot(s.meta["t_b"])
            assert "<image 1>" in s.instruction


def test_judge_cut_on_camera_motion_versus_new_scene():
    size = (480, 270)
    photo = cv2.resize(S.photo("coffee"), (960, 720), interpolation=cv2.INTER_CUBIC)
    other = cv2.resize(S.photo("rocket"), (960, 720), interpolation=cv2.INTER_CUBIC)
    a = S.render(photo, S.Pose(400.0, 360.0, 1.2), size)
    fast_pan = S.render(photo, S.Pose(560.0, 380.0, 1.1, 4.0), size)  # 1/3 of the frame, zoom, roll
    new_scene = S.render(other, S.Pose(480.0, 360.0, 1.2), size)
    for b, expected in ((fast_pan, False), (new_scene, True)):
        est = estimate_motion(a, b)
        cut = judge_cut(hist_distance(colour_histogram(a), colour_histogram(b)), est)
        assert cut.is_cut is expected, cut


def test_shot_ids():
    assert shot_ids([False, True, False, True]) == [0, 0, 1, 1, 2]
