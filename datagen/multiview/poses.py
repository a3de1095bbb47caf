"""Camera poses in one convention: COLMAP/OpenCV world-to-camera, x right, y down, z forward.

Every reader converts to `CameraPose` (CO3D's PyTorch3D convention included), so the motion
words and the samplers never see another convention.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CameraPose:
    R: np.ndarray  # 3x3 world -> camera rotation; rows are the camera's right, down, forward axes in world
    t: np.ndarray  # 3, so that x_cam = R @ x_world + t

    @property
    def center(self) -> np.ndarray:
        return -self.R.T @ self.t

    @property
    def right(self) -> np.ndarray:
        return self.R[0]

    @property
    def down(self) -> np.ndarray:
        return self.R[1]

    @property
    def forward(self) -> np.ndarray:
        return self.R[2]

    @classmethod
    def look_at(cls, eye, target, up=(0.0, 0.0, 1.0), roll_deg: float = 0.0) -> CameraPose:
        """A camera at `eye` looking at `target`, level w.r.t. `up`, then rolled clockwise
        (as seen from behind the camera) by `roll_deg` about its viewing axis."""
        eye, target, up = (np.asarray(v, np.float64) for v in (eye, target, up))
        fwd = target - eye
        fwd /= np.linalg.norm(fwd)
        right = np.cross(fwd, up)
        n = np.linalg.norm(right)
        if n < 1e-9:
            raise ValueError("look_at: viewing direction is parallel to up")
        right /= n
        down = np.cross(fwd, right)
        a = np.radians(roll_deg)
        # Clockwise roll seen from behind: the right axis turns toward the down axis.
        right, down = np.cos(a) * right + np.sin(a) * down, -np.sin(a) * right + np.cos(a) * down
        R = np.stack([right, down, fwd])
        return cls(R, -R @ eye)


def qvec_to_rotmat(q) -> np.ndarray:
    """COLMAP quaternion (qw, qx, qy, qz) -> rotation matrix (normalised first)."""
    w, x, y, z = np.asarray(q, np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * y * y - 2 * z * z, 2 * x * y - 2 * w * z, 2 * z * x + 2 * w * y],
            [2 * x * y + 2 * w * z, 1 - 2 * x * x - 2 * z * z, 2 * y * z - 2 * w * x],
            [2 * z * x - 2 * w * y, 2 * y * z + 2 * w * x, 1 - 2 * x * x - 2 * y * y],
        ]
    )


def rotmat_to_qvec(R: np.ndarray) -> np.ndarray:
    """Rotation matrix -> COLMAP quaternion (qw, qx, qy, qz) with qw >= 0 (COLMAP's own method)."""
    Rxx, Ryx, Rzx, Rxy, Ryy, Rzy, Rxz, Ryz, Rzz = np.asarray(R, np.float64).flat
    K = (
        np.array(
            [
                [Rxx - Ryy - Rzz, 0, 0, 0],
                [Ryx + Rxy, Ryy - Rxx - Rzz, 0, 0],
                [Rzx + Rxz, Rzy + Ryz, Rzz - Rxx - Ryy, 0],
                [Ryz - Rzy, Rzx - Rxz, Rxy - Ryx, Rxx + Ryy + Rzz],
            ]
        )
        / 3.0
    )
    vals, vecs = np.linalg.eigh(K)
    q = vecs[[3, 0, 1, 2], np.argmax(vals)]
    return -q if q[0] < 0 else q


def is_rotation(R: np.ndarray, tol: float = 1e-3) -> bool:
    R = np.asarray(R, np.float64)
    return (
        R.shape == (3, 3)
        and bool(np.all(np.isfinite(R)))
        and np.allclose(R @ R.T, np.eye(3), atol=tol)
        and abs(np.linalg.det(R) - 1.0) < tol
    )


def orbit_center(poses: list[CameraPose]) -> tuple[np.ndarray, float]:
    """Least-squares point closest to every camera's optical axis, and the conditioning of
    that fit (smallest/largest eigenvalue; near 0 when the axes are parallel, as in a
    forward-facing capture that orbits nothing)."""
    A = np.zeros((3, 3))
    b = np.zeros(3)
    for p in poses:
        d = p.forward
        P = np.eye(3) - np.outer(d, d)  # projects onto the plane normal to the axis
        A += P
        b += P @ p.center
    vals = np.linalg.eigvalsh(A)
    if vals[-1] <= 0:
        return np.zeros(3), 0.0
    return np.linalg.solve(A, b) if vals[0] > 1e-12 else np.zeros(3), float(vals[0] / vals[-1])


def estimate_up(poses: list[CameraPose]) -> np.ndarray:
    """World 'up' for a capture: the direction perpendicular to every camera's right axis.

    People hold a phone level while walking around an object, so right axes are horizontal
    even when the camera pitches down at the object; the mean camera up (COLMAP's gravity
    guess) would lean toward the object on a partial orbit. Falls back to the mean camera
    up when the right axes are all parallel (no azimuth change) and sign-matches to it.
    """
    mean = -np.mean([p.down for p in poses], axis=0)
    mean = mean / np.linalg.norm(mean) if np.linalg.norm(mean) > 1e-9 else np.array([0.0, 0.0, 1.0])
    rights = np.stack([p.right for p in poses])
    _, sv, vt = np.linalg.svd(rights)
    # Two clearly non-zero singular values = the right axes span a plane; its normal is up.
    if len(poses) < 2 or sv[1] < 0.05 * sv[0]:
        return mean
    up = vt[-1]
    return up if up @ mean >= 0 else -up
