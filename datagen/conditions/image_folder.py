"""A folder of images on local disk or object storage, listed through pyarrow.fs.

    folder = list_images("s3://bucket/photos")   # or a local path
    folder.files[0].uri, folder.files[0].name, folder.files[0].caption

Files are named by their path relative to the folder (`name`), so the same images
elsewhere give the same sample bytes. A caption is the text of a sidecar `<stem>.txt`,
read here on the driver: the harness makes only the image itself local for the item
function, so a remote sidecar would otherwise be out of reach.

A local folder is listed by `datagen.folder_listing`: an image (or its caption sidecar) that
is a link resolving outside the folder is refused (`ImageFolder.refused`, which the plan
turns into reject rows), so a caption can never be read from `~/.aws/credentials`. A store
URI with user:password@ is refused: it would be stored in lineage and cards.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import PurePosixPath

import pyarrow.fs as pafs

from datagen.backends.urls import redact, refuse_credentials
from datagen.folder_listing import Refused, list_folder

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
    refused: tuple[Refused, ...] = ()  # images (or their sidecars) that link outside the folder

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
    if remote:
        refuse_credentials(folder, flag, where="give store credentials in the environment")
        return _list_store(folder, flag)
    local_root = os.path.abspath(folder[len("file://"):] if folder.startswith("file://") else folder)
    if not os.path.isdir(local_root):
        raise FileNotFoundError(f"{flag} {folder} is neither a Lance dataset nor a folder")
    found = list_folder(local_root, keep=lambda rel: _is_image(rel) or rel.endswith(CAPTION_SUFFIX))
    out_links = {r.rel: r for r in found.refused}
    present = set(found.files)
    fs = pafs.LocalFileSystem()
    files, refused = [], [r for r in found.refused if _is_image(r.rel)]
    for name in found.files:
        if not _is_image(name):
            continue
        sidecar = _sidecar(name)
        if sidecar in out_links:
            why = out_links[sidecar]
            refused.append(Refused(f"{found.root}/{name}", name, why.reason, f"its caption {why.detail}"))
            continue
        caption = _read_caption(fs, f"{found.root}/{sidecar}") if sidecar in present else None
        files.append(FolderImage(f"{found.root}/{name}", name, os.path.getsize(f"{found.root}/{name}"), caption))
    if not files:
        why = f"; {len(refused)} refused ({refused[0].reason}: {refused[0].detail})" if refused else ""
        raise ValueError(f"{flag} {folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in the folder{why}")
    return ImageFolder(found.root, files, True, tuple(sorted(refused, key=lambda r: r.rel)))


def _is_image(rel: str) -> bool:
    return PurePosixPath(rel).suffix.lower() in IMAGE_SUFFIXES


def _sidecar(name: str) -> str:
    return str(PurePosixPath(name).with_suffix(CAPTION_SUFFIX))


def _list_store(folder: str, flag: str) -> ImageFolder:
    try:
        fs, root = pafs.FileSystem.from_uri(folder)
        info = fs.get_file_info(root)
    except (OSError, ValueError) as exc:
        raise FileNotFoundError(f"{flag} {redact(folder)}: {exc}") from exc
    if info.type != pafs.FileType.Directory:
        raise FileNotFoundError(f"{flag} {redact(folder)} is neither a Lance dataset nor a folder")
    root = root.rstrip("/")
    prefix = folder.rstrip("/")
    entries = {f.path[len(root):].lstrip("/"): f for f in fs.get_file_info(pafs.FileSelector(root, recursive=True))
               if f.type == pafs.FileType.File}
    files = []
    for name in sorted(entries):
        if not _is_image(name):
            continue
        sidecar = _sidecar(name)
        caption = _read_caption(fs, entries[sidecar].path) if sidecar in entries else None
        files.append(FolderImage(f"{prefix}/{name}", name, entries[name].size or 0, caption))
    if not files:
        raise ValueError(f"{flag} {redact(folder)}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in the folder")
    return ImageFolder(prefix, files, False)
