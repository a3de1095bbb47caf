"""CO3D (v2) sequences: `<category>/<sequence>/images/frameXXXXXX.jpg` with the poses of all of
a category's sequences in `<category>/frame_annotations.jgz` (gzipped JSON list).

A sequence folder may also hold its own `frame_annotations.jgz` / `frame_annotations.json`
(only its frames), which is how subsets are often shipped. Poses are PyTorch3D's
convention - row vectors, `X_view = X_world @ R + T`, view axes +X left, +Y up, +Z forward -
and are converted here to COLMAP/OpenCV (x right, y down, z forward):
`R_cv = diag(-1, -1, 1) @ R.T`, `t_cv = diag(-1, -1, 1) @ T`.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from datagen.multiview.colmap import PoseFileError
from datagen.multiview.poses import CameraPose, is_rotation

ANNOTATION_NAMES = ("frame_annotations.jgz", "frame_annotations.json")
# A category file of CO3D v2 is tens of MB unpacked; anything far beyond is not an annotation.
MAX_ANNOTATION_BYTES = 1 << 30
PYTORCH3D_TO_OPENCV = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class Co3dFrame:
    frame_number: int
    image_path: str  # as written in the annotation, relative to the dataset root
    size_hw: tuple[int, int]
    pose: CameraPose


def find_annotations(sequence_dir: Path) -> Path | None:
    for folder in (sequence_dir, sequence_dir.parent):
        for name in ANNOTATION_NAMES:
            if (folder / name).is_file():
                return folder / name
    return None


def pose_from_pytorch3d(R, T) -> CameraPose:
    R = np.asarray(R, np.float64)
    T = np.asarray(T, np.float64)
    return CameraPose(PYTORCH3D_TO_OPENCV @ R.T, PYTORCH3D_TO_OPENCV @ T)


def pose_to_pytorch3d(pose: CameraPose) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `pose_from_pytorch3d` (for writing CO3D-style annotations)."""
    return (PYTORCH3D_TO_OPENCV @ pose.R).T, PYTORCH3D_TO_OPENCV @ pose.t


@lru_cache(maxsize=2)
def _load_category(path: str, mtime: float, size: int) -> dict[str, list[dict]]:
    # Every sequence of a category is one unit of work; caching the parsed file per worker
    # avoids re-reading it for each sequence. mtime/size in the key notice a rewritten file.
    p = Path(path)
    try:
        if p.suffix == ".jgz":
            with gzip.open(p, "rb") as f:
                raw = f.read(MAX_ANNOTATION_BYTES + 1)
        else:
            raw = p.read_bytes()[: MAX_ANNOTATION_BYTES + 1]
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise PoseFileError("malformed_pose_file", f"{p.name}: {exc}") from None
    if len(raw) > MAX_ANNOTATION_BYTES:
        raise PoseFileError("malformed_pose_file", f"{p.name}: unpacks to more than {MAX_ANNOTATION_BYTES} bytes")
    try:
        items = json.loads(raw)
    except ValueError as exc:
        raise PoseFileError("malformed_pose_file", f"{p.name}: not JSON ({exc})") from None
    if not isinstance(items, list):
        raise PoseFileError("malformed_pose_file", f"{p.name}: expected a JSON list of frame annotations")
    by_seq: dict[str, list[dict]] = {}
    for it in items:
        if isinstance(it, dict):
            by_seq.setdefault(str(it.get("sequence_name")), []).append(it)
    return by_seq


def read_co3d_sequence(sequence_dir: str | Path) -> list[Co3dFrame]:
    """Frames of one sequence in frame order; raises PoseFileError with a stable reason."""
    sequence_dir = Path(sequence_dir)
    path = find_annotations(sequence_dir)
    if path is None:
        raise PoseFileError("missing_pose_file", f"no {' or '.join(ANNOTATION_NAMES)} in {sequence_dir} or its parent")
    st = path.stat()
    items = _load_category(str(path), st.st_mtime, st.st_size).get(sequence_dir.name, [])
    if not items:
        raise PoseFileError("missing_pose_file", f"{path.name} has no frames of sequence {sequence_dir.name!r}")
    frames = []
    for it in items:
        where = f"{path.name} frame {it.get('frame_number')!r}"
        try:
            vp = it["viewpoint"]
            pose = pose_from_pytorch3d(vp["R"], vp["T"])
            h, w = (int(v) for v in it["image"]["size"])
            frame = Co3dFrame(int(it["frame_number"]), str(it["image"]["path"]), (h, w), pose)
        except (KeyError, TypeError, ValueError) as exc:
            raise PoseFileError("malformed_pose_file", f"{where}: {type(exc).__name__}: {exc}") from None
        if not is_rotation(pose.R) or not np.all(np.isfinite(pose.t)):
            raise PoseFileError("malformed_pose_file", f"{where}: R is not a rotation or T is not finite")
        frames.append(frame)
    return sorted(frames, key=lambda f: f.frame_number)
