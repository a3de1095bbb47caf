"""The video files under a folder or an object-store prefix, as planned items: shared by the
video-pairs and storyboard products.

Each file becomes one `Item(input="file")`: the harness hands the item function a local
path (a bounded copy for s3:// and other stores), so neither product touches a store.
Samples name a video by its path relative to the listed root (`video_id`), so the same
videos in another folder give the same bytes.

Identity of a file (lineage source and content key):
- a local file: the sha256 of its bytes, read at plan time;
- an object-store file: its size and modification time from the store's listing (pyarrow
  `FileInfo`; pyarrow does not expose ETags), because hashing would download every video
  once more before any work. An object rewritten with the same bytes gets a new identity.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import pyarrow.fs as pafs

from datagen.product import INPUT_FILE, Item
from datagen.store.lineage import file_hash

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".gif", ".mpg", ".mpeg", ".ts"}


@dataclass(frozen=True)
class VideoFile:
    uri: str  # what the item reads: an absolute local path or a store URI
    video_id: str  # path relative to the listed root: what samples name
    size: int
    identity: str  # "sha256:<hex>" (local) or "size:<n>,mtime_ns:<t>" (object store)

    def source(self) -> dict[str, Any]:
        """The lineage record of this input."""
        sha = self.identity[len("sha256:"):] if self.identity.startswith("sha256:") else None
        return {"kind": "video", "uri": self.uri, "bytes": self.size, "content_hash": sha, "identity": self.identity}


def _remote(root: str) -> bool:
    return "://" in root and not root.startswith("file://")


def list_videos(root: str) -> list[VideoFile]:
    """Every video file under `root`, sorted by URI. Raises before any work when there is none."""
    local = not _remote(root)
    where = os.path.abspath(root[len("file://"):] if root.startswith("file://") else root) if local else root
    try:
        fs, base = pafs.FileSystem.from_uri(where)
        info = fs.get_file_info(base)
    except (OSError, ValueError) as exc:  # unknown scheme, unreachable store
        raise FileNotFoundError(f"--videos {root}: cannot list it ({type(exc).__name__}: {exc})") from exc
    if info.type != pafs.FileType.Directory:
        raise FileNotFoundError(f"--videos {root} is not a folder or prefix")
    prefix = base if local else root.rstrip("/")
    found = []
    for f in fs.get_file_info(pafs.FileSelector(base, recursive=True)):
        if f.type != pafs.FileType.File or PurePosixPath(f.path).suffix.lower() not in VIDEO_SUFFIXES:
            continue
        rel = f.path[len(base):].lstrip("/")
        uri = f"{prefix}/{rel}"
        identity = "sha256:" + file_hash(uri) if local else f"size:{f.size},mtime_ns:{f.mtime_ns}"
        found.append(VideoFile(uri, rel, int(f.size or 0), identity))
    if not found:
        raise ValueError(f"--videos {root}: no video files ({', '.join(sorted(VIDEO_SUFFIXES))})")
    return sorted(found, key=lambda v: v.uri)


def video_items(files: list[VideoFile]) -> list[Item]:
    return [Item(i, source=v.uri, data={"video_id": v.video_id}, input=INPUT_FILE) for i, v in enumerate(files)]


def inputs_digest(files: list[VideoFile]) -> dict[str, Any]:
    """What the content key holds of the inputs: their names and identities, not where they sit."""
    h = hashlib.sha256()
    for v in files:
        h.update(f"{v.video_id}\0{v.identity}\n".encode())
    return {"videos": len(files), "identities": h.hexdigest()}
