"""Relative camera motion between two views of one object, in numbers and in words.

Object-centric, as a person walking around an object with a phone would say it. With the
object at `center` and the world's `up`, each camera has an azimuth about `up`, an elevation
above the horizontal plane through the centre, a distance to the centre and a roll about its
own viewing axis. From view A to view B:

- orbit right/left by N degrees: azimuth change, positive when the camera moves toward its
  own right (the object turns to show its left side);
- tilt up/down by N degrees: elevation change; "tilt up" = the camera rises and looks down
  on the object from higher;
- move closer/away by P%: distance ratio;
- roll clockwise/counterclockwise by N degrees: rotation about the viewing axis, clockwise as
  seen from behind the camera (the picture turns counterclockwise).

Numbers are rounded to whole degrees / percent in words and kept exact in `CameraMotion`.
Components below the thresholds are left out; no motion at all is "keep the same viewpoint".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from datagen.multiview.poses import CameraPose
from datagen.schema import quantize

MIN_ANGLE_DEG = 2.0
MIN_DISTANCE_CHANGE = 0.05


@dataclass(frozen=True)
class CameraMotion:
    azimuth_deg: float  # + = orbit right
    elevation_deg: float  # + = tilt up (camera higher)
    distance_ratio: float  # distance_B / distance_A; < 1 = closer
    roll_deg: float  # + = roll clockwise

    def words(self) -> str:
        return motion_words(self)

    def as_dict(self) -> dict[str, float | str]:
        d: dict[str, float | str] = {k: round(float(v), 4) for k, v in asdict(self).items()}
        d["words"] = self.words()
        return d

    @property
    def angle_deg(self) -> float:
        """Rough size of the viewpoint change, for choosing views spaced apart."""
        return float(np.hypot(self.azimuth_deg, self.elevation_deg))


def _signed_angle(a: np.ndarray, b: np.ndarray, axis: np.ndarray) -> float:
    return float(np.degrees(np.arctan2(axis @ np.cross(a, b), a @ b)))


def _spherical(pose: CameraPose, center: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, float, float]:
    d = pose.center - center
    r = float(np.linalg.norm(d))
    elev = float(np.degrees(np.arcsin(np.clip(d @ up / max(r, 1e-12), -1.0, 1.0))))
    return d - (d @ up) * up, elev, r


def _roll(pose: CameraPose, up: np.ndarray) -> float:
    # 0 when the camera's right axis is level and its down axis points down.
    return float(np.degrees(np.arctan2(-(pose.right @ up), -(pose.down @ up))))


def relative_motion(a: CameraPose, b: CameraPose, center, up) -> CameraMotion:
    """Motion that takes camera `a` to camera `b` around the object at `center`."""
    center = np.asarray(center, np.float64)
    up = np.asarray(up, np.float64)
    up = up / np.linalg.norm(up)
    ha, ea, ra = _spherical(a, center, up)
    hb, eb, rb = _spherical(b, center, up)
    if np.linalg.norm(ha) < 1e-9 or np.linalg.norm(hb) < 1e-9:
        azimuth = 0.0  # a camera straight above the centre has no azimuth
    else:
        # Right-handed about up, the camera moving toward its right is a positive turn of its
        # position vector: see the module docstring for the sign conventions.
        azimuth = _signed_angle(ha, hb, up)
    roll = (_roll(b, up) - _roll(a, up) + 180.0) % 360.0 - 180.0
    # At the stored precision: views are chosen by comparing these with thresholds, and the
    # BLAS/LAPACK-based pose maths above differs per CPU in the last bits.
    return CameraMotion(quantize(azimuth), quantize(eb - ea), quantize(rb / max(ra, 1e-12)), quantize(roll))


def motion_words(m: CameraMotion) -> str:
    parts = []
    if abs(m.azimuth_deg) >= MIN_ANGLE_DEG:
        parts.append(f"orbit {'right' if m.azimuth_deg > 0 else 'left'} by {round(abs(m.azimuth_deg))} degrees")
    if abs(m.elevation_deg) >= MIN_ANGLE_DEG:
        parts.append(f"tilt {'up' if m.elevation_deg > 0 else 'down'} by {round(abs(m.elevation_deg))} degrees")
    change = m.distance_ratio - 1.0
    if abs(change) >= MIN_DISTANCE_CHANGE:
        if change < 0:
            parts.append(f"move closer by {round(-change * 100)}%")
        else:
            parts.append(f"move away by {round(change * 100)}%")
    if abs(m.roll_deg) >= MIN_ANGLE_DEG:
        parts.append(f"roll {'clockwise' if m.roll_deg > 0 else 'counterclockwise'} by {round(abs(m.roll_deg))} degrees")
    if not parts:
        return "keep the same viewpoint"
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
