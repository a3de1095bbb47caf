"""A folder of images on local disk or object storage, listed through pyarrow.fs.

    folder = list_images("s3://bucket/photos")   # or a local path
    folder.files[0].uri, folder.files[0].name, folder.files[0].caption

Files are named by their path relative to the folder (`name`), so the same images
elsewhere give the same sample bytes. A caption is the text of a sidecar `<stem>.txt`,
read here on the driver: the harness makes only the image itself local for the item
function, so a remote sidecar would otherwise be out of reach.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import PurePosixPath

import pyarrow.fs as pafs

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
CAPTION_SUFFIX = ".txt"
MAX_CAPTION_BYTES = 64 << 10  # a caption is a sentence or a paragraph; more is not a caption


@dataclass(frozen=True)
class FolderImage:
    uri: str  # a local path or an object-store URI: what the harness makes local
    name: str  # path relative to the folder, "/"-separated
    size: int
    caption: str | None = None


@dataclass(frozen=True)
class ImageFolder:
    root: str  # absolute local path or URI, without a trailing slash
    files: list[FolderImage]
    local: bool

    def listing_hash(self) -> str:
        """Names, sizes and captions: identifies a remote folder without downloading it."""
        h = hashlib.sha256()
        for f in self.files:
            h.update(f"{f.name}\0{f.size}\0{f.caption or ''}\n".encode())
        return h.hexdigest()


def _read_caption(fs: pafs.FileSystem, path: str) -> str | None:
    with fs.open_input_stream(path) as fin:
        text = fin.read(MAX_CAPTION_BYTES).decode("utf-8", errors="replace").strip()
    return text or None


def list_images(folder: str, flag: str = "--images") -> ImageFolder:
    """Every image file under `folder` (recursive), in sorted order, with its caption.

    Raises FileNotFoundError when `folder` is not a folder (or prefix) and ValueError when it
    holds no image files: both before any work starts."""
    remote = "://" in folder and not folder.startswith("file://")
    local_root = folder[len("file://"):] if folder.startswith("file://") else folder
    try:
        fs, root = pafs.FileSystem.from_uri(folder if remote else os.path.abspath(local_root))
        info = fs.get_file_info(root)
    except (OSError, ValueError) as exc:
        raise FileNotFoundError(f"{flag} {folder}: {exc}") from exc
    if info.type != pafs.FileType.Directory:
        raise FileNotFoundError(f"{flag} {folder} is neither a Lance dataset nor a folder")
    root = root.rstrip("/")
    prefix = folder.rstrip("/") if remote else root
    entries = {f.path[len(root):].lstrip("/"): f for f in fs.get_file_info(pafs.FileSelector(root, recursive=True))
               if f.type == pafs.FileType.File}
    files = []
    for name in sorted(entries):
        if PurePosixPath(name).suffix.lower() not in IMAGE_SUFFIXES:
            continue
        sidecar = str(PurePosixPath(name).with_suffix(CAPTION_SUFFIX))
        caption = _read_caption(fs, entries[sidecar].path) if sidecar in entries else None
        files.append(FolderImage(f"{prefix}/{name}", name, entries[name].size or 0, caption))
    if not files:
        raise ValueError(f"{flag} {folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in the folder")
    return ImageFolder(prefix, files, not remote)
