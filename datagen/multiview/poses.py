"""Camera poses in one convention: COLMAP/OpenCV world-to-camera, x right, y down, z forward.

Every reader converts to `CameraPose` (CO3D's PyTorch3D convention included), so the motion
words and the samplers never see another convention.
"""

from __future__ import annotations

import math
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
    """Rotation matrix -> COLMAP quaternion (qw, qx, qy, qz) with qw >= 0.

    Shepperd's closed form in scalar float64 (the largest of w, x, y, z is found first, so no
    division is ill-conditioned) instead of an eigen-solver: LAPACK's kernels differ per CPU
    in the last bits, and the COLMAP files the demo writes must have the same bytes anywhere.
    """
    (r00, r01, r02), (r10, r11, r12), (r20, r21, r22) = (tuple(float(v) for v in row) for row in np.asarray(R))
    trace = r00 + r11 + r22
    if trace > max(r00, r11, r22):
        s = 2.0 * math.sqrt(1.0 + trace)
        q = (0.25 * s, (r21 - r12) / s, (r02 - r20) / s, (r10 - r01) / s)
    elif r00 >= r11 and r00 >= r22:
        s = 2.0 * math.sqrt(1.0 + r00 - r11 - r22)
        q = ((r21 - r12) / s, 0.25 * s, (r01 + r10) / s, (r02 + r20) / s)
    elif r11 >= r22:
        s = 2.0 * math.sqrt(1.0 + r11 - r00 - r22)
        q = ((r02 - r20) / s, (r01 + r10) / s, 0.25 * s, (r12 + r21) / s)
    else:
        s = 2.0 * math.sqrt(1.0 + r22 - r00 - r11)
        q = ((r10 - r01) / s, (r02 + r20) / s, (r12 + r21) / s, 0.25 * s)
    n = math.sqrt(math.fsum(v * v for v in q))
    out = np.array([v / n for v in q])
    return -out if out[0] < 0 else out


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
