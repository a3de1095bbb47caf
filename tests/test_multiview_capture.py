"""Capture readers (COLMAP .bin/.txt, CO3D), the multi-view sampler, and bad input -> rejects."""

import gzip
import json
import struct

import numpy as np
import pytest
import skimage.data

from datagen.images import encode_jpeg
from datagen.multiview.capture import read_capture
from datagen.multiview.co3d import pose_to_pytorch3d
from datagen.multiview.colmap import (
    Camera,
    ImageRecord,
    PoseFileError,
    SparseModel,
    read_sparse_model,
    write_sparse_model,
)
from datagen.multiview.motion import relative_motion
from datagen.multiview.poses import CameraPose
from datagen.multiview.config import MultiviewConfig
from datagen.multiview.samples import multiview_samples
from datagen.rng import sample_rng
from datagen.schema import from_row, samples_table, validate

UP = np.array([0.0, 0.0, 1.0])
CENTER = np.zeros(3)
W, H = 96, 72


def cfg(**values):
    """The product config; `captures` (where the plan looks) does not matter to one capture."""
    return MultiviewConfig(captures="unused", **values)


def orbit(n, step_deg=12.0, el=20.0):
    poses = []
    for k in range(n):
        a, e = np.radians(k * step_deg), np.radians(el + 3 * (k % 3))
        eye = 3.0 * np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])
        poses.append(CameraPose.look_at(eye, CENTER, UP))
    return poses


def photo_views(n):
    """Real photo crops sliding across the astronaut: distinct, same-size views."""
    img = skimage.data.astronaut()
    return [np.ascontiguousarray(img[100 + 8 * k : 100 + 8 * k + 216 : 3, 60 + 10 * k : 60 + 10 * k + 288 : 3]) for k in range(n)]


def write_colmap_capture(root, n=8, fmt="bin", sizes=None):
    (root / "images").mkdir(parents=True)
    poses = orbit(n)
    recs = {}
    for k, (pose, px) in enumerate(zip(poses, photo_views(n))):
        if sizes and k in sizes:
            px = np.ascontiguousarray(px[: sizes[k][1], : sizes[k][0]])
        name = f"{k:03d}.jpg"
        (root / "images" / name).write_bytes(encode_jpeg(px))
        recs[k + 1] = ImageRecord(k + 1, name, 1, pose)
    cam = Camera(1, "SIMPLE_RADIAL", W, H, (80.0, W / 2, H / 2, 0.01))
    write_sparse_model(root / "sparse" / "0", SparseModel({1: cam}, recs), fmt)
    return poses


@pytest.mark.parametrize("fmt", ["bin", "txt"])
def test_colmap_round_trip(tmp_path, fmt):
    poses = write_colmap_capture(tmp_path / "cat" / "obj1", fmt=fmt)
    model = read_sparse_model(tmp_path / "cat" / "obj1" / "sparse" / "0")
    assert model.cameras[1].model == "SIMPLE_RADIAL" and model.cameras[1].focal == (80.0, 80.0)
    for k, pose in enumerate(poses):
        rec = model.images[k + 1]
        assert rec.name == f"{k:03d}.jpg"
        np.testing.assert_allclose(rec.pose.R, pose.R, atol=1e-12)
        np.testing.assert_allclose(rec.pose.t, pose.t, atol=1e-12)
    capture, rejects = read_capture(tmp_path / "cat" / "obj1")
    assert rejects == []
    assert capture.capture_id == "cat/obj1" and capture.layout == "colmap"
    assert [v.name for v in capture.views] == [f"{k:03d}.jpg" for k in range(8)]


def test_multiview_samples_words_match_the_poses(tmp_path):
    poses = write_colmap_capture(tmp_path / "cat" / "obj1", n=10)
    config = cfg(min_extra=2, max_extra=3, samples_per_capture=3, min_step_deg=20, max_step_deg=30)
    samples, rejects = multiview_samples(tmp_path / "cat" / "obj1", config, sample_rng(5, 0))
    assert samples and rejects == []
    for s in samples:
        validate(s)
        assert s.task == "multiview" and len(s.inputs) == 1 and 2 <= len(s.outputs) <= 3
        assert s.instruction.count("<image 1>") == 1
        assert s.inputs[0].format == "jpeg" and s.inputs[0].role == "reference"
        ref = int(s.meta["reference_view"][:3])
        names = [int(v[:3]) for v in s.meta["views"]]
        # Consecutive order along the capture, forward or backward.
        steps = np.diff([ref] + names)
        assert np.all(steps > 0) or np.all(steps < 0)
        for k, (name, motion) in enumerate(zip(names, s.meta["motion"])):
            truth = relative_motion(poses[ref], poses[name], CENTER, UP)
            assert motion["azimuth_deg"] == pytest.approx(truth.azimuth_deg, abs=1e-3)
            assert motion["elevation_deg"] == pytest.approx(truth.elevation_deg, abs=1e-3)
            assert f"view {k + 1}: {truth.words()}" in s.instruction
            # 12 degrees per frame: the words name the orbit exactly.
            assert f"orbit {'right' if name > ref else 'left'} by {abs(name - ref) * 12} degrees" in s.instruction
        assert s.source_ids[0] == f"cat/obj1/{ref:03d}.jpg"
    # The record survives Arrow encoding.
    row = samples_table(samples[:1]).to_pylist()[0]
    back = from_row(row)
    assert back.meta["motion"] == samples[0].meta["motion"] and len(back.outputs) == len(samples[0].outputs)


def test_same_rng_same_samples(tmp_path):
    write_colmap_capture(tmp_path / "cat" / "obj1", n=10)
    config = cfg(samples_per_capture=2)
    a, _ = multiview_samples(tmp_path / "cat" / "obj1", config, sample_rng(9, 4))
    b, _ = multiview_samples(tmp_path / "cat" / "obj1", config, sample_rng(9, 4))
    assert [s.instruction for s in a] == [s.instruction for s in b]
    assert all(np.array_equal(x.outputs[-1].pixels, y.outputs[-1].pixels) for x, y in zip(a, b))


def test_co3d_layout(tmp_path):
    seq = tmp_path / "teddybear" / "34_1403_4393"
    (seq / "images").mkdir(parents=True)
    poses = orbit(6)
    frames = []
    for k, (pose, px) in enumerate(zip(poses, photo_views(6))):
        name = f"frame{k + 1:06d}.jpg"
        (seq / "images" / name).write_bytes(encode_jpeg(px))
        R, T = pose_to_pytorch3d(pose)
        frames.append(
            {
                "sequence_name": seq.name,
                "frame_number": k,
                "image": {"path": f"teddybear/{seq.name}/images/{name}", "size": [H, W]},
                "viewpoint": {"R": R.tolist(), "T": T.tolist(), "focal_length": [1.5, 1.5], "principal_point": [0, 0]},
            }
        )
    frames.append({**frames[0], "sequence_name": "another_sequence"})
    with gzip.open(tmp_path / "teddybear" / "frame_annotations.jgz", "wt") as f:
        json.dump(frames, f)
    capture, rejects = read_capture(seq)
    assert rejects == [] and capture.layout == "co3d" and len(capture.views) == 6
    for view, pose in zip(capture.views, poses):
        np.testing.assert_allclose(view.pose.R, pose.R, atol=1e-12)
        np.testing.assert_allclose(view.pose.center, pose.center, atol=1e-12)
    samples, _ = multiview_samples(seq, cfg(), sample_rng(0, 0))
    assert samples and "orbit" in samples[0].instruction


# --------------------------------------------------------------------------- bad input
def reasons(rejects):
    return sorted(r.reason for r in rejects)


def test_missing_pose_files(tmp_path):
    root = tmp_path / "cat" / "obj"
    write_colmap_capture(root, n=4)
    (root / "sparse" / "0" / "images.bin").unlink()
    samples, rejects = multiview_samples(root, cfg(), sample_rng(0, 0))
    assert samples == [] and reasons(rejects) == ["missing_pose_file"]
    assert "images.bin or images.txt" in rejects[0].detail and rejects[0].source == "cat/obj"
    (root / "sparse").rename(root / "elsewhere")
    assert reasons(multiview_samples(root, cfg(), sample_rng(0, 0))[1]) == ["missing_pose_file"]
    assert reasons(read_capture(tmp_path / "nothing_here")[1]) == ["missing_images"]


@pytest.mark.parametrize(
    "damage",
    ["truncate_bin", "huge_count", "trailing_bytes", "bad_quaternion_txt", "garbage_txt", "unknown_camera", "bad_gzip"],
)
def test_malformed_pose_files(tmp_path, damage):
    root = tmp_path / "cat" / "obj"
    fmt = "txt" if damage.endswith("_txt") else "bin"
    write_colmap_capture(root, n=4, fmt=fmt)
    sparse = root / "sparse" / "0"
    if damage == "truncate_bin":
        raw = (sparse / "images.bin").read_bytes()
        (sparse / "images.bin").write_bytes(raw[: len(raw) // 2])
    elif damage == "huge_count":
        raw = (sparse / "images.bin").read_bytes()
        (sparse / "images.bin").write_bytes(struct.pack("<Q", 2**40) + raw[8:])
    elif damage == "trailing_bytes":
        (sparse / "cameras.bin").write_bytes((sparse / "cameras.bin").read_bytes() + b"junk")
    elif damage == "bad_quaternion_txt":
        text = (sparse / "images.txt").read_text().replace("\n1 ", "\n1 0.0 0.0 0.0 0.0 ", 1)
        (sparse / "images.txt").write_text(text)
    elif damage == "garbage_txt":
        (sparse / "images.txt").write_text("1 not numbers at all\n\n")
    elif damage == "unknown_camera":
        (sparse / "cameras.bin").write_bytes(struct.pack("<Q", 1) + struct.pack("<iiQQ", 1, 99, W, H))
    elif damage == "bad_gzip":
        import shutil

        shutil.rmtree(root / "sparse")
        (root / "frame_annotations.jgz").write_bytes(b"\x1f\x8b not really gzip")
    samples, rejects = multiview_samples(root, cfg(), sample_rng(0, 0))
    assert samples == [] and reasons(rejects) == ["malformed_pose_file"], rejects
    assert rejects[0].detail


def test_quaternion_parse_error_is_not_a_crash(tmp_path):
    root = tmp_path / "cat" / "obj"
    write_colmap_capture(root, n=3, fmt="txt")
    with pytest.raises(PoseFileError) as err:
        (root / "sparse" / "0" / "cameras.txt").write_text("1 PINHOLE 96 72 80 80 48\n")
        read_sparse_model(root / "sparse" / "0")
    assert err.value.reason == "malformed_pose_file" and "wants 4 params" in err.value.detail


def test_views_of_different_sizes_missing_and_corrupt_images(tmp_path):
    root = tmp_path / "cat" / "obj"
    write_colmap_capture(root, n=8, sizes={2: (80, 60), 5: (96, 70)})
    (root / "images" / "006.jpg").unlink()
    (root / "images" / "007.jpg").write_bytes(b"not a jpeg")
    (root / "images" / "extra.jpg").write_bytes((root / "images" / "000.jpg").read_bytes())
    capture, rejects = read_capture(root)
    by_source = {r.source: r.reason for r in rejects}
    assert by_source == {
        "cat/obj/002.jpg": "view_size_mismatch",
        "cat/obj/005.jpg": "view_size_mismatch",
        "cat/obj/006.jpg": "missing_image",
        "cat/obj/007.jpg": "corrupt_image",
        "cat/obj/extra.jpg": "missing_pose",
    }
    assert [v.name for v in capture.views] == ["000.jpg", "001.jpg", "003.jpg", "004.jpg"]
    samples, all_rejects = multiview_samples(root, cfg(samples_per_capture=2), sample_rng(1, 0))
    assert samples and all(s.outputs[0].pixels.shape == s.inputs[0].pixels.shape for s in samples)
    assert len(all_rejects) == 5


def test_one_view_capture_and_forward_facing_capture(tmp_path):
    root = tmp_path / "cat" / "one"
    write_colmap_capture(root, n=1)
    samples, rejects = multiview_samples(root, cfg(), sample_rng(0, 0))
    assert samples == [] and reasons(rejects) == ["too_few_views"]

    root = tmp_path / "cat" / "slide"
    (root / "images").mkdir(parents=True)
    recs = {}
    for k, px in enumerate(photo_views(4)):
        (root / "images" / f"{k}.jpg").write_bytes(encode_jpeg(px))
        # A camera sliding sideways, looking straight ahead: axes never meet.
        recs[k + 1] = ImageRecord(k + 1, f"{k}.jpg", 1, CameraPose.look_at([k, 0, 0], [k, 5, 0], UP))
    write_sparse_model(root / "sparse" / "0", SparseModel({1: Camera(1, "PINHOLE", W, H, (80, 80, 48, 36))}, recs))
    samples, rejects = multiview_samples(root, cfg(), sample_rng(0, 0))
    assert samples == [] and reasons(rejects) == ["not_object_centric"]


def test_static_capture_gives_too_little_motion(tmp_path):
    root = tmp_path / "cat" / "still"
    (root / "images").mkdir(parents=True)
    recs = {}
    for k, (px, pose) in enumerate(zip(photo_views(3), orbit(3, step_deg=4.0, el=20.0))):
        # 4 degrees apart: the axes meet at the object, but no step reaches min_step_deg.
        (root / "images" / f"{k}.jpg").write_bytes(encode_jpeg(px))
        recs[k + 1] = ImageRecord(k + 1, f"{k}.jpg", 1, pose)
    write_sparse_model(root / "sparse" / "0", SparseModel({1: Camera(1, "PINHOLE", W, H, (80, 80, 48, 36))}, recs))
    samples, rejects = multiview_samples(root, cfg(), sample_rng(0, 0))
    assert samples == [] and reasons(rejects) == ["too_little_motion"]


class Notes:
    """A stand-in for VLMDescriber (the VLM itself is tested in test_scoring_vlm.py)."""

    tag = "vlm_describe@test"

    def __call__(self, groups, fields):
        return [f"{len(g)} images, {f['n_extra']} extra" for g, f in zip(groups, fields)]


def test_scores_thresholds_and_description_hooks(tmp_path):
    from datagen.scoring import GeometricConsistencyScorer, SharpnessScorer

    root = tmp_path / "cat" / "obj"
    write_colmap_capture(root, n=8)
    config = cfg(samples_per_capture=2)
    samples, rejects = multiview_samples(root, config, sample_rng(0, 1), scorers=[SharpnessScorer()], describer=Notes())
    assert samples and not rejects
    for s in samples:
        assert s.scorer == "sharpness@1" and s.scores["sharpness"] > 0
        assert s.meta["vlm_description"] == f"{1 + len(s.outputs)} images, {len(s.outputs)} extra"
        assert s.meta["vlm_describer"] == "vlm_describe@test"
    # --min-geo: views that share no geometry (noise of the same size) fall below the floor.
    noise = np.random.default_rng(0)
    for k in range(8):
        (root / "images" / f"{k:03d}.jpg").write_bytes(encode_jpeg(noise.integers(0, 255, (H, W, 3), np.uint8)))
    config = config.replace(min_geo=0.5)
    assert config.min_scores == {"geo_consistency": 0.5}
    samples, rejects = multiview_samples(root, config, sample_rng(0, 1), scorers=[GeometricConsistencyScorer()])
    assert samples == [] and rejects and {r.reason for r in rejects} == {"geo_consistency_below_min"}
