"""Shot boundaries on a clip with real cuts; pairs stay inside shots, transitions cross them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from datagen.rng import sample_rng
from datagen.video import VideoPairsConfig, process_video
from datagen.video import synthetic as S
from datagen.video.motion import estimate_motion
from datagen.video.recuts import RecutPlanner
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


def test_recuts_splice_two_different_shots(cut_video):
    """Re-cuts: a moment of one shot, then a moment of another, in either order; the shots and
    their extents are in meta and agree with where the cuts really are."""
    _, samples, _ = cut_video
    recuts = [s for s in samples if s.task == "video.recut"]
    assert len(recuts) == pairs_config().recut_pairs
    assert len({(s.meta["shot_a"], s.meta["shot_b"]) for s in recuts}) == len(recuts)
    for s in recuts:
        m = s.meta
        assert m["kind"] == "recut" and m["shot_a"] != m["shot_b"]
        assert (true_shot(m["t_a"]), true_shot(m["t_b"])) == (m["shot_a"], m["shot_b"])
        for t, (start, end), shot in ((m["t_a"], m["shot_a_s"], m["shot_a"]), (m["t_b"], m["shot_b_s"], m["shot_b"])):
            assert start <= t <= end and true_shot(start) == true_shot(end) == shot
        assert m["order"] == ("later" if m["shot_b"] > m["shot_a"] else "earlier")
        assert f" {m['order']} shot" in s.instruction and s.instruction.count("<image 1>") == 1
        assert s.scores["hist_distance"] > 0.2  # another photo: the colours differ
        assert s.inputs[0].pixels.shape == s.outputs[0].pixels.shape


def test_recut_planner_holds_few_frames_and_draws_from_its_rng():
    def run(seed, shots=50, per_shot=3, n=3, bad=()):
        planner = RecutPlanner(n, np.random.default_rng(seed))
        peak = 0
        for k in range(shots):
            for j in range(per_shot):
                planner.offer(k, (k, j), k * 10.0 + j, usable=(k, j) not in bad)
                peak = max(peak, len(planner.held))
        return planner.finish(), peak

    pairs, peak = run(0)
    assert peak <= 6 and len(pairs) == 3  # memory: 2n shots, whatever the video's length
    assert all(a.shot != b.shot and a.item[0] == a.shot and b.item[0] == b.shot for a, b in pairs)
    assert all(a.start == a.shot * 10.0 and a.end == a.shot * 10.0 + 2 for a, _ in pairs)
    assert len({(a.shot, b.shot) for a, b in pairs}) == 3
    again, _ = run(0)
    assert [(a.shot, a.item, b.shot, b.item) for a, b in pairs] == [(a.shot, a.item, b.shot, b.item) for a, b in again]
    shots_over_seeds = {a.shot for s in range(20) for a, _ in run(s)[0]}
    assert len(shots_over_seeds) > 25  # any shot of the video can be chosen, not only the first ones
    everything, _ = run(1, shots=4, n=20)  # every ordered pair of 4 shots, once
    assert sorted((a.shot, b.shot) for a, b in everything) == [(i, j) for i in range(4) for j in range(4) if i != j]
    bad = {(k, j) for k in range(50) for j in (0, 2)}  # only the middle frame of each shot is usable
    assert all(a.item[1] == 1 and b.item[1] == 1 for a, b in run(2, bad=bad)[0])
    assert run(3, shots=1)[0] == [] and run(3, n=0)[0] == []


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
