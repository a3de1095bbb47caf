"""COLMAP sparse models (`cameras`, `images` in .bin or .txt): a guarded reader and a writer.

Pose files come from the wild (MVImageNet ships one per object), so the reader checks every
count against the bytes that remain before allocating, and every failure is a `PoseFileError`
with a stable reason (`missing_pose_file`, `malformed_pose_file`) that the capture reader
turns into a reject. Formats: https://colmap.github.io/format.html (points3D is not needed
for camera motion and is not read).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datagen.multiview.poses import (
    CameraPose,
    is_rotation,
    qvec_to_rotmat,
    rotmat_to_qvec,
)
from datagen.rejection import Rejected

# model id -> (name, number of params); COLMAP's src/colmap/sensor/models.h.
CAMERA_MODELS = {
    0: ("SIMPLE_PINHOLE", 3),
    1: ("PINHOLE", 4),
    2: ("SIMPLE_RADIAL", 4),
    3: ("RADIAL", 5),
    4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8),
    6: ("FULL_OPENCV", 12),
    7: ("FOV", 5),
    8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5),
    10: ("THIN_PRISM_FISHEYE", 12),
    11: ("RAD_TAN_THIN_PRISM_FISHEYE", 16),
}
MODEL_IDS = {name: (mid, n) for mid, (name, n) in CAMERA_MODELS.items()}
MAX_RECORDS = 1_000_000
MAX_FILE_BYTES = 1 << 30  # a pose file is read whole; one from the wild may not be a disk's worth


class PoseFileError(Rejected):
    """A missing or malformed COLMAP/CO3D pose file."""


@dataclass(frozen=True)
class Camera:
    camera_id: int
    model: str
    width: int
    height: int
    params: tuple[float, ...]

    @property
    def focal(self) -> tuple[float, float]:
        """(fx, fy): models whose params start 'f, cx, cy' share one focal length."""
        if self.model.startswith("SIMPLE") or self.model in ("RADIAL", "RADIAL_FISHEYE"):
            return (self.params[0], self.params[0])
        return (self.params[0], self.params[1])


@dataclass(frozen=True)
class ImageRecord:
    image_id: int
    name: str
    camera_id: int
    pose: CameraPose


@dataclass
class SparseModel:
    cameras: dict[int, Camera]
    images: dict[int, ImageRecord]


# --------------------------------------------------------------------------- reading
def read_sparse_model(folder: str | Path) -> SparseModel:
    """Read `cameras` and `images` from a COLMAP sparse folder (.bin preferred over .txt)."""
    folder = Path(folder)
    found = {}
    for stem in ("cameras", "images"):
        for ext in (".bin", ".txt"):
            if (folder / f"{stem}{ext}").is_file():
                found[stem] = folder / f"{stem}{ext}"
                break
        else:
            raise PoseFileError("missing_pose_file", f"no {stem}.bin or {stem}.txt in {folder}")
    cams = _read_cameras_bin(found["cameras"]) if found["cameras"].suffix == ".bin" else _read_cameras_txt(found["cameras"])
    imgs = _read_images_bin(found["images"]) if found["images"].suffix == ".bin" else _read_images_txt(found["images"])
    for rec in imgs.values():
        if rec.camera_id not in cams:
            raise PoseFileError("malformed_pose_file", f"image {rec.name!r} uses camera {rec.camera_id}, not in cameras")
    return SparseModel(cams, imgs)


def _camera(cid: int, model: str, w: int, h: int, params: list[float], where: str) -> Camera:
    if model not in MODEL_IDS:
        raise PoseFileError("malformed_pose_file", f"{where}: unknown camera model {model!r}")
    if len(params) != MODEL_IDS[model][1]:
        raise PoseFileError("malformed_pose_file", f"{where}: {model} wants {MODEL_IDS[model][1]} params, got {len(params)}")
    if w <= 0 or h <= 0 or not all(np.isfinite(params)):
        raise PoseFileError("malformed_pose_file", f"{where}: bad size {w}x{h} or params {params}")
    return Camera(cid, model, w, h, tuple(float(p) for p in params))


def _pose(q: list[float], t: list[float], where: str) -> CameraPose:
    q_arr, t_arr = np.asarray(q, np.float64), np.asarray(t, np.float64)
    if not (np.all(np.isfinite(q_arr)) and np.all(np.isfinite(t_arr))) or np.linalg.norm(q_arr) < 1e-8:
        raise PoseFileError("malformed_pose_file", f"{where}: invalid quaternion {q} or translation {t}")
    R = qvec_to_rotmat(q_arr)
    if not is_rotation(R):
        raise PoseFileError("malformed_pose_file", f"{where}: quaternion {q} is not a rotation")
    return CameraPose(R, t_arr)


def _text_lines(path: Path) -> list[tuple[int, str]]:
    try:
        _check_size(path)
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PoseFileError("malformed_pose_file", f"{path.name}: {exc}") from None
    return list(enumerate(text.splitlines(), 1))


def _read_cameras_txt(path: Path) -> dict[int, Camera]:
    cams = {}
    for n, line in _text_lines(path):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        where = f"{path.name}:{n}"
        try:
            cid, model, w, h = int(parts[0]), parts[1], int(parts[2]), int(parts[3])
            params = [float(p) for p in parts[4:]]
        except (ValueError, IndexError):
            raise PoseFileError("malformed_pose_file", f"{where}: cannot parse {line[:120]!r}") from None
        cams[cid] = _camera(cid, model, w, h, params, where)
    return cams


def _read_images_txt(path: Path) -> dict[int, ImageRecord]:
    imgs = {}
    # Each image takes two lines: the pose line, then its 2-D points (possibly empty).
    lines = [(n, ln) for n, ln in _text_lines(path) if not ln.lstrip().startswith("#")]
    k = 0
    while k < len(lines):
        n, line = lines[k]
        if not line.strip():
            k += 1
            continue
        parts = line.split()
        where = f"{path.name}:{n}"
        try:
            iid = int(parts[0])
            q = [float(v) for v in parts[1:5]]
            t = [float(v) for v in parts[5:8]]
            cid = int(parts[8])
            name = " ".join(parts[9:])
        except (ValueError, IndexError):
            raise PoseFileError("malformed_pose_file", f"{where}: cannot parse {line[:120]!r}") from None
        if not name or len(q) != 4 or len(t) != 3:
            raise PoseFileError("malformed_pose_file", f"{where}: incomplete image line {line[:120]!r}")
        imgs[iid] = ImageRecord(iid, name, cid, _pose(q, t, where))
        k += 2
    return imgs


def _check_size(path: Path) -> None:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise PoseFileError("malformed_pose_file", f"{path.name}: larger than {MAX_FILE_BYTES:,} bytes")


class _Reader:
    def __init__(self, path: Path):
        try:
            _check_size(path)
            self.buf = path.read_bytes()
        except OSError as exc:
            raise PoseFileError("malformed_pose_file", f"{path.name}: {exc}") from None
        self.pos = 0
        self.name = path.name

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise PoseFileError("malformed_pose_file", f"{self.name}: truncated at byte {self.pos}")
        out = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return out

    def count(self, min_record: int) -> int:
        (n,) = self.take("<Q")
        if n > MAX_RECORDS or n * min_record > len(self.buf) - self.pos:
            raise PoseFileError("malformed_pose_file", f"{self.name}: claims {n} records, file too short")
        return n

    def cstring(self) -> str:
        end = self.buf.find(b"\x00", self.pos)
        if end < 0 or end - self.pos > 4096:
            raise PoseFileError("malformed_pose_file", f"{self.name}: unterminated name at byte {self.pos}")
        raw = self.buf[self.pos : end]
        self.pos = end + 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise PoseFileError("malformed_pose_file", f"{self.name}: name is not UTF-8") from None


def _read_cameras_bin(path: Path) -> dict[int, Camera]:
    r = _Reader(path)
    cams = {}
    for _ in range(r.count(24)):
        cid, mid, w, h = r.take("<iiQQ")
        if mid not in CAMERA_MODELS:
            raise PoseFileError("malformed_pose_file", f"{path.name}: unknown camera model id {mid}")
        name, n_params = CAMERA_MODELS[mid]
        params = list(r.take(f"<{n_params}d"))
        cams[cid] = _camera(cid, name, w, h, params, f"{path.name} camera {cid}")
    _expect_end(r)
    return cams


def _read_images_bin(path: Path) -> dict[int, ImageRecord]:
    r = _Reader(path)
    imgs = {}
    for _ in range(r.count(64 + 1 + 8)):
        iid, qw, qx, qy, qz, tx, ty, tz, cid = r.take("<idddddddi")
        name = r.cstring()
        n_pts = r.count(24)
        r.pos += 24 * n_pts  # (x, y, point3D_id) per observation; bounds checked by count()
        where = f"{path.name} image {iid}"
        if not name:
            raise PoseFileError("malformed_pose_file", f"{where}: empty name")
        imgs[iid] = ImageRecord(iid, name, cid, _pose([qw, qx, qy, qz], [tx, ty, tz], where))
    _expect_end(r)
    return imgs


def _expect_end(r: _Reader) -> None:
    if r.pos != len(r.buf):
        raise PoseFileError("malformed_pose_file", f"{r.name}: {len(r.buf) - r.pos} trailing bytes")


# --------------------------------------------------------------------------- writing
def write_sparse_model(folder: str | Path, model: SparseModel, fmt: str = "bin") -> None:
    """Write cameras, images and an empty points3D in COLMAP's .bin or .txt format."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cams = sorted(model.cameras.values(), key=lambda c: c.camera_id)
    imgs = sorted(model.images.values(), key=lambda i: i.image_id)
    if fmt == "txt":
        lines = ["# Camera list with one line of data per camera:", "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]"]
        lines += [f"{c.camera_id} {c.model} {c.width} {c.height} " + " ".join(repr(p) for p in c.params) for c in cams]
        (folder / "cameras.txt").write_text("\n".join(lines) + "\n")
        lines = ["# Image list with two lines of data per image:", "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME"]
        for im in imgs:
            q, t = rotmat_to_qvec(im.pose.R), im.pose.t
            vals = " ".join(repr(float(v)) for v in (*q, *t))
            lines += [f"{im.image_id} {vals} {im.camera_id} {im.name}", ""]
        (folder / "images.txt").write_text("\n".join(lines) + "\n")
        (folder / "points3D.txt").write_text("# 3D point list (empty: poses only)\n")
        return
    if fmt != "bin":
        raise ValueError(f"fmt must be 'bin' or 'txt', not {fmt!r}")
    out = bytearray(struct.pack("<Q", len(cams)))
    for c in cams:
        out += struct.pack("<iiQQ", c.camera_id, MODEL_IDS[c.model][0], c.width, c.height)
        out += struct.pack(f"<{len(c.params)}d", *c.params)
    (folder / "cameras.bin").write_bytes(bytes(out))
    out = bytearray(struct.pack("<Q", len(imgs)))
    for im in imgs:
        q, t = rotmat_to_qvec(im.pose.R), im.pose.t
        out += struct.pack("<idddddddi", im.image_id, *q, *t, im.camera_id)
        out += im.name.encode("utf-8") + b"\x00" + struct.pack("<Q", 0)
    (folder / "images.bin").write_bytes(bytes(out))
    (folder / "points3D.bin").write_bytes(struct.pack("<Q", 0))
