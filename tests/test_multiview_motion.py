"""Camera-motion words from known poses: exact degrees, signs, and the conventions they rest on."""

import numpy as np
import pytest

from datagen.multiview.co3d import pose_from_pytorch3d, pose_to_pytorch3d
from datagen.multiview.motion import CameraMotion, motion_words, relative_motion
from datagen.multiview.poses import (
    CameraPose,
    orbit_center,
    qvec_to_rotmat,
    rotmat_to_qvec,
)
from datagen.multiview.samples import unwrapped_motions

UP = np.array([0.0, 0.0, 1.0])
CENTER = np.array([0.2, -0.1, 0.5])


def cam(az_deg, el_deg, dist=3.0, roll=0.0, center=CENTER, up=UP):
    """A camera on the viewing sphere of `center`, looking at it (azimuth counterclockwise about +z)."""
    az, el = np.radians(az_deg), np.radians(el_deg)
    eye = center + dist * np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    return CameraPose.look_at(eye, center, up, roll_deg=roll)


def test_orbit_degrees_are_exact_and_signed_by_the_cameras_own_right():
    a = cam(0, 20)
    m = relative_motion(a, cam(30, 20), CENTER, UP)
    assert m.azimuth_deg == pytest.approx(30.0, abs=1e-9)
    assert m.elevation_deg == pytest.approx(0.0, abs=1e-9)
    assert m.distance_ratio == pytest.approx(1.0)
    assert m.roll_deg == pytest.approx(0.0, abs=1e-9)
    # Counterclockwise seen from above = toward camera a's own right: "orbit right".
    step = cam(1, 20).center - a.center
    assert step @ a.right > 0
    assert m.words() == "orbit right by 30 degrees"
    assert relative_motion(a, cam(-45, 20), CENTER, UP).words() == "orbit left by 45 degrees"


def test_tilt_distance_and_roll_words():
    a = cam(10, 10, dist=4.0)
    assert relative_motion(a, cam(10, 35, dist=4.0), CENTER, UP).words() == "tilt up by 25 degrees"
    assert relative_motion(a, cam(10, -5, dist=4.0), CENTER, UP).words() == "tilt down by 15 degrees"
    assert relative_motion(a, cam(10, 10, dist=3.0), CENTER, UP).words() == "move closer by 25%"
    assert relative_motion(a, cam(10, 10, dist=5.0), CENTER, UP).words() == "move away by 25%"
    m = relative_motion(a, cam(10, 10, dist=4.0, roll=12.0), CENTER, UP)
    assert m.roll_deg == pytest.approx(12.0, abs=1e-9)
    assert m.words() == "roll clockwise by 12 degrees"
    assert relative_motion(a, cam(10, 10, dist=4.0, roll=-7.0), CENTER, UP).words() == "roll counterclockwise by 7 degrees"


def test_clockwise_roll_turns_the_right_axis_toward_down():
    level, rolled = cam(0, 0), cam(0, 0, roll=90.0)
    np.testing.assert_allclose(rolled.right, level.down, atol=1e-12)


def test_combined_motion_lists_every_component_in_order():
    m = relative_motion(cam(0, 15, 3.0), cam(-60, 30, 2.4, roll=5.0), CENTER, UP)
    assert m.words() == "orbit left by 60 degrees, tilt up by 15 degrees, move closer by 20% and roll clockwise by 5 degrees"
    assert motion_words(CameraMotion(0.4, -1.0, 1.01, 0.5)) == "keep the same viewpoint"


def test_other_up_axis_and_centre():
    up = np.array([0.0, 1.0, 0.0])
    center = np.array([1.0, 2.0, 3.0])

    def cam_y(az, el):
        a, e = np.radians(az), np.radians(el)
        eye = center + 2.0 * np.array([np.cos(e) * np.sin(a), np.sin(e), np.cos(e) * np.cos(a)])
        return CameraPose.look_at(eye, center, up)

    m = relative_motion(cam_y(0, 0), cam_y(40, 10), center, up)
    assert m.elevation_deg == pytest.approx(10.0, abs=1e-9)
    assert abs(m.azimuth_deg) == pytest.approx(40.0, abs=1e-9)
    step = cam_y(1, 0).center - cam_y(0, 0).center
    assert np.sign(m.azimuth_deg) == np.sign(step @ cam_y(0, 0).right)


def test_path_azimuth_accumulates_past_180_degrees():
    poses = [cam(a, 20) for a in (0, -70, -140, -210)]
    motions = unwrapped_motions(poses, CENTER, UP)
    assert [round(m.azimuth_deg) for m in motions] == [-70, -140, -210]
    assert motions[-1].words() == "orbit left by 210 degrees"


def test_orbit_center_is_where_the_optical_axes_meet():
    poses = [cam(a, e) for a, e in [(0, 10), (50, 25), (120, 5), (200, 30)]]
    center, cond = orbit_center(poses)
    np.testing.assert_allclose(center, CENTER, atol=1e-9)
    assert cond > 0.01
    parallel = [CameraPose.look_at([x, -5.0, 0.0], [x, 0.0, 0.0], UP) for x in (0.0, 1.0, 2.0)]
    assert orbit_center(parallel)[1] < 1e-9


def test_quaternion_round_trip_and_pytorch3d_conversion():
    rng = np.random.default_rng(3)
    for _ in range(20):
        pose = cam(*rng.uniform([-180, -40, 1, -20], [180, 60, 5, 20]))
        q = rotmat_to_qvec(pose.R)
        assert q[0] >= 0
        np.testing.assert_allclose(qvec_to_rotmat(q), pose.R, atol=1e-12)
        R3, T3 = pose_to_pytorch3d(pose)
        # PyTorch3D: X_view = X_world @ R + T with +X left, +Y up.
        x_world = rng.normal(size=3)
        x_view = x_world @ R3 + T3
        x_cv = pose.R @ x_world + pose.t
        np.testing.assert_allclose(x_view, [-x_cv[0], -x_cv[1], x_cv[2]], atol=1e-12)
        back = pose_from_pytorch3d(R3, T3)
        np.testing.assert_allclose(back.R, pose.R, atol=1e-12)
        np.testing.assert_allclose(back.t, pose.t, atol=1e-12)
