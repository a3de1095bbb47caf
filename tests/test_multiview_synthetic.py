"""Demo captures rendered with Mitsuba 3: on-disk layout, camera convention, determinism."""

import numpy as np
import pytest

mi = pytest.importorskip("mitsuba", reason="the demo renderer needs mitsuba==3.9.1")

from datagen.multiview import synthetic  # noqa: E402
from datagen.multiview.capture import read_capture  # noqa: E402
from datagen.multiview.colmap import read_sparse_model  # noqa: E402
from datagen.multiview.poses import CameraPose  # noqa: E402
from datagen.multiview.config import MultiviewConfig  # noqa: E402
from datagen.multiview.samples import multiview_samples  # noqa: E402
from datagen.rng import sample_rng  # noqa: E402
from datagen.schema import validate  # noqa: E402

SMALL = {"n_views": 6, "width": 96, "height": 72, "spp": 4}


def test_rendered_marker_lands_where_the_written_camera_projects_it():
    m = synthetic._mitsuba()
    marker = np.array([0.3, -0.2, 0.6])
    scene = synthetic.build_scene(
        m,
        {"marker": {"type": "sphere", "center": marker.tolist(), "radius": 0.1,
                    "bsdf": {"type": "diffuse", "reflectance": {"type": "rgb", "value": [1.0, 0.0, 0.0]}}}},
    )
    w, h, fov = 160, 120, 50.0
    f = w / 2 / np.tan(np.radians(fov / 2))
    for eye, roll in [([3.0, -2.0, 1.5], 0.0), ([-1.0, 3.0, 2.5], 20.0)]:
        pose = CameraPose.look_at(eye, [0, 0, 0.5], roll_deg=roll)
        img = synthetic.render_view(m, scene, pose, w, h, fov, spp=4, seed=0)
        red = (img[:, :, 0] > 120) & (img[:, :, 1] < 60)
        ys, xs = np.nonzero(red)
        assert len(xs) > 5
        x_cam = pose.R @ marker + pose.t
        u, v = f * x_cam[0] / x_cam[2] + w / 2, f * x_cam[1] / x_cam[2] + h / 2
        # Pixel k covers [k, k+1): its centre is k + 0.5 in COLMAP's continuous coordinates.
        assert abs(xs.mean() + 0.5 - u) < 1.0 and abs(ys.mean() + 0.5 - v) < 1.0


def test_demo_captures_have_the_mvimagenet_layout_and_are_deterministic(tmp_path):
    a = synthetic.make_demo_captures(tmp_path / "a", seed=3, objects=("toy",), **SMALL)
    b = synthetic.make_demo_captures(tmp_path / "b", seed=3, objects=("toy",), **SMALL)
    root = a[0]
    assert root.name == "toy_00" and (root / "sparse" / "0" / "cameras.bin").is_file()
    model = read_sparse_model(root / "sparse" / "0")
    cam = model.cameras[1]
    assert (cam.model, cam.width, cam.height) == ("PINHOLE", 96, 72)
    assert cam.focal[0] == pytest.approx(48 / np.tan(np.radians(25)))
    for name in sorted(p.name for p in (root / "images").iterdir()):
        assert (root / "images" / name).read_bytes() == (b[0] / "images" / name).read_bytes()
    capture, rejects = read_capture(root)
    assert rejects == [] and len(capture.views) == 6 and capture.views[0].size == (96, 72)
    # The orbit is a handheld-like loop: consecutive views tens of degrees apart, same object.
    samples, rejects = multiview_samples(root, MultiviewConfig(captures=str(tmp_path / "a"), samples_per_capture=2, max_side=0), sample_rng(3, 0))
    assert samples and not rejects
    for s in samples:
        validate(s)
        assert "orbit" in s.instruction and s.outputs[0].pixels.shape == (72, 96, 3)


def test_other_seed_other_object():
    rng_a, rng_b = sample_rng(1, 0), sample_rng(2, 0)
    assert not np.array_equal(synthetic.procedural_texture(rng_a, 64), synthetic.procedural_texture(rng_b, 64))
