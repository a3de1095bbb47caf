"""Listing a local input folder without leaving it: every product that reads a folder of
inputs (videos, images, captures, asset packs, photos) lists it here.

    found = list_folder("/data/clips", keep=lambda rel: rel.endswith(".mp4"))
    found.files     # ["a.mp4", "sub/b.mp4"]: paths relative to the folder, sorted
    found.refused   # [Refused("evil.mp4", "outside_folder", ...)]: each becomes a reject row

The rules:
- an entry that resolves outside the folder (a symlink to /etc/passwd, to `..`, to another
  user's data) is refused: reason `outside_folder`; a link to nothing: `broken_link`; a
  sub-folder that cannot be read: `unreadable_folder`. Links that stay inside are followed.
- symlinked sub-folders are not descended: if they point inside, their files are listed
  where they really are (no duplicates, and a link loop costs nothing); if they point
  outside, the link itself is refused (its files are not looked at).
- nothing is dropped silently: the caller turns `refused` into reject rows (`Refused.reject`)
  or an error, so inputs = kept + rejected still holds.
The check is made when the folder is listed (plan time). Someone who can write into the
folder while a run reads it can still swap a file for a link: run on folders you control.
Object stores (s3://...) have no links; their listings do not come here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from datagen.schema import Reject

OUTSIDE = "outside_folder"
BROKEN = "broken_link"
UNREADABLE = "unreadable_folder"


@dataclass(frozen=True)
class Refused:
    path: str  # the entry as found in the folder (absolute, not resolved)
    rel: str  # relative to the listed folder, "/"-separated
    reason: str
    detail: str

    def reject(self, *, task: str = "", stage: str = "plan", generator: str = "") -> Reject:
        return Reject(reason=self.reason, detail=self.detail, source=self.path, task=task, stage=stage,
                      generator=generator)


@dataclass(frozen=True)
class Listing:
    root: str  # the folder as given, made absolute (not resolved: names stay the user's)
    files: list[str] = field(default_factory=list)  # relative paths of the files kept, sorted
    refused: list[Refused] = field(default_factory=list)  # sorted by rel

    def paths(self) -> list[Path]:
        return [Path(self.root) / rel for rel in self.files]


def outside(path: str | Path, within: str | Path) -> Refused | None:
    """None when `path` (a file or folder that may be a link) resolves inside `within`, else
    why not. For single paths a product opens by name: sidecars, names.json, markers."""
    within_real = os.path.realpath(within)
    return _check(os.path.abspath(path), os.path.relpath(os.path.abspath(path), os.path.abspath(within)),
                  within_real, str(within))


def list_folder(folder: str | Path, *, keep: Callable[[str], bool] = lambda rel: True, recursive: bool = True,
                skip_hidden: bool = False, within: str | Path | None = None) -> Listing:
    """Files under `folder` (recursive unless told), entries outside `within` (default: the
    folder itself) refused. `keep(rel)` picks the files that matter (a suffix); refused
    files it would not keep are dropped, refused folder links are always reported.
    `skip_hidden` ignores files and links whose own name starts with a dot."""
    root = os.path.abspath(folder)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{folder} is not a folder")
    bound = os.path.realpath(within if within is not None else root)
    label = str(within if within is not None else folder)
    files: list[str] = []
    refused: list[Refused] = []
    if within is not None:  # a sub-folder of the input folder may itself be the link out
        why = _check(root, _rel(root, os.path.abspath(within)), bound, label)
        if why is not None:
            return Listing(root, [], [why])

    def unreadable(err: OSError) -> None:
        path = err.filename or root
        refused.append(Refused(path, _rel(path, root), UNREADABLE, f"cannot list {path}: {err.strerror or err}"))

    for top, dirs, names in os.walk(root, onerror=unreadable, followlinks=False):
        dirs.sort()
        for d in list(dirs):
            path = os.path.join(top, d)
            if not os.path.islink(path):
                continue
            dirs.remove(d)  # never descended: inside, its files are listed where they are
            if skip_hidden and d.startswith("."):
                continue
            why = _check(path, _rel(path, root), bound, label)
            if why is not None:
                refused.append(why)
        if not recursive:
            dirs.clear()
        for name in names:
            if skip_hidden and name.startswith("."):
                continue
            path = os.path.join(top, name)
            rel = _rel(path, root)
            if not keep(rel):
                continue
            why = _check(path, rel, bound, label) if os.path.islink(path) else None
            (refused.append(why) if why is not None else files.append(rel))
    return Listing(root, sorted(files), sorted(refused, key=lambda r: r.rel))


def _rel(path: str, root: str) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _check(path: str, rel: str, bound: str, label: str) -> Refused | None:
    real = os.path.realpath(path)
    if real != bound and not real.startswith(bound.rstrip(os.sep) + os.sep):
        return Refused(path, rel, OUTSIDE, f"{rel} links to {real}, outside {label}: inputs must be inside the "
                                           "folder they are listed from")
    if not os.path.exists(path):
        return Refused(path, rel, BROKEN, f"{rel} links to {real}, which does not exist")
    return None


def refuse_links_out(folders: list[Path], within: str | Path, task: str = "") -> tuple[list[Path], list[Reject]]:
    """For inputs that are folders (multi-view captures): those holding no entry that links
    outside `within`, and one reject per folder that does. A folder link out of `within`
    that lies in none of them (it may hide a whole capture) is a reject too."""
    refused = list_folder(within).refused
    kept, rejects, claimed = [], [], set()
    for folder in folders:
        rel = Path(os.path.relpath(os.path.abspath(folder), os.path.abspath(within))).as_posix()
        mine = [r for r in refused if rel == "." or r.rel == rel or r.rel.startswith(rel + "/")]
        if not mine:
            kept.append(folder)
            continue
        claimed |= {r.path for r in mine}
        more = f" (and {len(mine) - 1} more)" if len(mine) > 1 else ""
        rejects.append(Reject(reason=mine[0].reason, detail=f"{mine[0].detail}{more}", source=str(folder), task=task,
                              stage="plan"))
    rejects += [r.reject(task=task) for r in refused if r.path not in claimed and os.path.isdir(r.path)]
    return kept, rejects
