"""Quality filters, motion weighting and near-duplicate removal, on frames and on clips."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from datagen import images
from datagen.rng import sample_rng
from datagen.video import VideoPairsConfig, process_video
from datagen.video import synthetic as S
from datagen.video.filters import (
    MotionRule,
    frame_problem,
    measure_quality,
    motion_problem,
    motion_weight,
)
from datagen.video.phash import PairIndex, hamming, phash

try:
    from tests import videos as V
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    import videos as V


def pairs_config(**changes) -> VideoPairsConfig:
    """The product config; `videos` (the folder the product lists) is not read by process_video."""
    return VideoPairsConfig(videos="-", **changes)


@pytest.fixture(scope="module")
def sharp() -> np.ndarray:
    return S.render(V.canvas(), S.Pose(1024.0, 768.0), (640, 360))


def test_frame_checks_on_photos(sharp):
    assert frame_problem(measure_quality(sharp)) is None
    blurred = cv2.GaussianBlur(sharp, (0, 0), 4.0)
    assert frame_problem(measure_quality(blurred))[0] == "blurry"
    assert frame_problem(measure_quality(np.full_like(sharp, 4)))[0] == "underexposed"
    assert frame_problem(measure_quality(np.full_like(sharp, 250)))[0] == "overexposed"
    # A dark but real photo (the Hubble deep field is mostly black sky) is kept.
    hubble = cv2.resize(S.photo("hubble_deep_field"), (640, 360), interpolation=cv2.INTER_AREA)
    assert frame_problem(measure_quality(hubble)) is None


def test_sharpness_does_not_depend_on_resolution(sharp):
    big = cv2.resize(sharp, (1920, 1080), interpolation=cv2.INTER_CUBIC)
    small, large = measure_quality(sharp).sharpness, measure_quality(big).sharpness
    assert large == pytest.approx(small, rel=0.35)


def test_motion_rule_and_weight():
    rule = MotionRule()
    assert motion_problem(0.001, rule)[0] == "static_pair"
    assert motion_problem(0.01, rule) is None
    ws = [motion_weight(m, rule) for m in (0.0, 0.01, rule.boost_from, 0.05, rule.boost_to, 0.5)]
    assert ws[:3] == [1.0, 1.0, 1.0]
    assert ws == sorted(ws) and ws[-1] == ws[-2] == rule.max_weight


def test_phash_survives_jpeg_and_separates_photos(sharp):
    again = images.decode(images.encode_jpeg(sharp, 60))
    assert hamming(phash(sharp), phash(again)) <= 4
    hashes = [phash(cv2.resize(S.photo(n), (320, 180))) for n in ("astronaut", "coffee", "rocket", "chelsea")]
    assert min(hamming(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1 :]) >= 16
    index = PairIndex(max_distance=6)
    index.add(hashes[0], hashes[1])
    assert index.find(hashes[0], hashes[1]) == 0
    assert index.find(hashes[0], hashes[2]) is None  # one frame alike is not a duplicate pair


@pytest.mark.parametrize(
    "writer, reason",
    [
        (lambda d: V.solid(d / "black.mp4", 0), "underexposed"),
        (lambda d: V.solid(d / "white.mp4", 255), "overexposed"),
        (lambda d: V.blurry(d / "soft.mp4"), "blurry"),
    ],
)
def test_bad_frames_reject_their_pairs(tmp_path, writer, reason):
    samples, rejects = process_video(writer(tmp_path), pairs_config(stitched_pairs=0), sample_rng(0, 0))
    assert samples == []
    assert rejects and {r.reason for r in rejects} == {reason}
    assert all(r.stage == "filter" and "#t=" in r.source for r in rejects)


def test_static_and_repeated_pairs(tmp_path):
    path = S.write_video(tmp_path / "still.mp4", [S.render(V.canvas(), S.Pose(1024.0 + 0.05 * k, 768.0), (320, 180))
                                                  for k in range(60)], 20)  # fmt: skip
    samples, rejects = process_video(path, pairs_config(stitched_pairs=0), sample_rng(0, 0))
    assert samples == [] and {r.reason for r in rejects} == {"static_pair"}
    # A 1 s move played four times: the second time round, pairs repeat the first.
    samples, rejects = process_video(V.looping(tmp_path / "loop.mp4"), pairs_config(anchor_every_s=0.5,
                                     stitched_pairs=0), sample_rng(0, 0))  # fmt: skip
    reasons = [r.reason for r in rejects]
    assert samples and "near_duplicate" in reasons


def test_high_motion_is_up_weighted(tmp_path):
    def weights(step_px):
        poses = [S.Pose(700.0 + step_px * k, 768.0) for k in range(30)]
        path, _ = V.pose_clip(tmp_path / f"pan{step_px}.mp4", poses, (320, 180), fps=10.0)
        cfg = pairs_config(gap_range_s=(1.0, 1.0), anchor_every_s=0.5, stitched_pairs=0)
        samples, _ = process_video(path, cfg, sample_rng(0, 0))
        return [s.weight for s in samples if s.task == "video.pair"]

    # 10 fps, 1 s gaps: 4 px (1.1% of the 367 px diagonal) versus 80 px (22%) per pair.
    slow, fast = weights(0.4), weights(8.0)
    assert slow and fast
    assert all(w == 1.0 for w in slow)
    assert all(w > 1.0 for w in fast)
