"""One capture folder -> its posed views in capture order, or rejects that say why not.

Layouts:
- MVImageNet / COLMAP: `<capture>/images/*` + `<capture>/sparse/0/{cameras,images}.{bin,txt}`
  (also accepted: `<capture>/sparse/{cameras,images}.*`);
- CO3D: `<capture>/images/*` + `frame_annotations.jgz` in the capture or its parent folder.

Capture order is the natural sort of file names (MVImageNet and CO3D number frames in the
order they were filmed), so "consecutive" views are neighbours along the camera path.
Views are checked by header only here (cheap); pixels are decoded when a view is chosen.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from datagen.multiview.co3d import find_annotations, read_co3d_sequence
from datagen.multiview.colmap import PoseFileError, read_sparse_model
from datagen.multiview.poses import CameraPose
from datagen.schema import Reject

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
TASK = "multiview"


@dataclass(frozen=True)
class View:
    name: str  # file name, unique within the capture
    path: Path
    pose: CameraPose
    size: tuple[int, int]  # (width, height) from the file header
    focal: tuple[float, float] | None = None  # pixels, when the pose file gives it


@dataclass
class Capture:
    capture_id: str  # "<category>/<object>" - the last two path parts, stable across machines
    root: Path
    layout: str  # "colmap" | "co3d"
    views: list[View]


def natural_key(name: str) -> list:
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", name)]


def capture_id(root: Path) -> str:
    return "/".join(root.resolve().parts[-2:])


def _reject(reason: str, detail: str, source: str, stage: str = "source") -> Reject:
    return Reject(reason=reason, detail=detail, source=source, task=TASK, stage=stage)


def read_capture(capture_dir: str | Path) -> tuple[Capture | None, list[Reject]]:
    """(capture, per-view rejects) or (None, [the reason the whole capture is unusable])."""
    root = Path(capture_dir)
    cid = capture_id(root)
    img_dir = root / "images"
    if not img_dir.is_dir():
        return None, [_reject("missing_images", f"no images/ folder in {root}", cid)]
    files = {p.name: p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()}
    sparse = next((d for d in (root / "sparse" / "0", root / "sparse") if d.is_dir()), None)
    try:
        if sparse is not None:
            layout = "colmap"
            posed = _colmap_poses(sparse)
        elif find_annotations(root) is not None:
            layout = "co3d"
            posed = {Path(f.image_path).name: (f.pose, None) for f in read_co3d_sequence(root)}
        else:
            return None, [_reject("missing_pose_file", f"no sparse/0/ (COLMAP) or frame_annotations (CO3D) for {root}", cid)]
    except PoseFileError as err:
        return None, [_reject(err.reason, err.detail, cid)]

    rejects: list[Reject] = []
    views: list[View] = []
    for name in sorted(set(files) | set(posed), key=natural_key):
        src = f"{cid}/{name}"
        if name not in files:
            rejects.append(_reject("missing_image", f"pose for {name} but no file in images/", src))
            continue
        if name not in posed:
            rejects.append(_reject("missing_pose", f"{name} has no pose in the {layout} model", src))
            continue
        size = _header_size(files[name])
        if isinstance(size, str):
            rejects.append(_reject("corrupt_image", size, src))
            continue
        pose, focal = posed[name]
        views.append(View(name, files[name], pose, size, focal))

    if views:
        # One sample's views must share a size; the capture's majority size wins.
        common, _ = Counter(v.size for v in views).most_common(1)[0]
        for v in [v for v in views if v.size != common]:
            rejects.append(_reject("view_size_mismatch", f"{v.name} is {v.size[0]}x{v.size[1]}, capture is {common[0]}x{common[1]}", f"{cid}/{v.name}"))
        views = [v for v in views if v.size == common]
    return Capture(cid, root, layout, views), rejects


def _colmap_poses(sparse: Path) -> dict[str, tuple[CameraPose, tuple[float, float] | None]]:
    model = read_sparse_model(sparse)
    out = {}
    for rec in model.images.values():
        # COLMAP names may carry sub-folders ("images/000.jpg" in some exports).
        out[Path(rec.name).name] = (rec.pose, model.cameras[rec.camera_id].focal)
    return out


def _header_size(path: Path) -> tuple[int, int] | str:
    try:
        with Image.open(path) as im:
            return im.size
    except Exception as exc:  # PIL raises many types for junk headers
        return f"{path.name}: {type(exc).__name__}: {exc}"
