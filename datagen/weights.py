"""Local model folders: where weights are looked up, and the one error when they are not there.

No machine reaches a model hub, so every model-backed step takes a local path and checks it
*before* any work starts. When a file is missing, `MissingWeights` names the file, the folder
it looked in, and what to put there; its fields (`what`, `missing`, `folder`, `hint`) say the
same for code. Folders written by `datagen.testing` carry the tiny-random marker, which
`is_tiny_random` reads so every tag derived from such weights says they mean nothing.

A leaf module: it imports nothing of ours, so `models/` may use it (the one exception to
"models imports nothing of datagen", enforced by tests/test_import_boundaries.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

WEIGHTS_ENV = "UNIMONTAGE_WEIGHTS"
HF_HINT = "download the model once on a machine with internet (huggingface-cli download ...) and copy the folder"
TINY_MARKER = "unimontage_tiny_random"


class MissingWeights(FileNotFoundError):
    """A model file is not where the configuration says it is.

    `what`: the model or annotator that needs it; `missing`: the absent file names ("a or b"
    for alternatives); `folder`: where they were looked for; `hint`: where to get them.
    """

    def __init__(self, message: str, *, what: str = "", missing: Sequence[str] = (),
                 folder: str | os.PathLike[str] | None = None, hint: str = ""):
        super().__init__(message)
        self.what = what
        self.missing = list(missing)
        self.folder = Path(folder) if folder is not None else None
        self.hint = hint


def _with_hint(message: str, hint: str) -> str:
    return f"{message}; {hint}" if hint else message


# --------------------------------------------------------------------------- where to look
def default_weights_dir(layout: str) -> Path:
    """`$UNIMONTAGE_WEIGHTS/<layout>`, else `./weights/<layout>`."""
    root = os.environ.get(WEIGHTS_ENV)
    return (Path(root) if root else Path("weights")) / layout


def resolve_dir(weights_dir: str | os.PathLike[str] | None, layout: str) -> Path:
    return Path(weights_dir) if weights_dir is not None else default_weights_dir(layout)


def first_present(folder: Path, names: Sequence[str]) -> Path | None:
    """The first of `names` that is a file in `folder` (weights may come in several formats)."""
    return next((folder / name for name in names if (folder / name).is_file()), None)


# --------------------------------------------------------------------------- checks
def require_dir(folder: str | os.PathLike[str], what: str) -> Path:
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise MissingWeights(f"{what}: model folder {folder} does not exist", what=what, folder=folder)
    return folder


def require_file(path: str | os.PathLike[str], what: str, hint: str = "") -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingWeights(_with_hint(f"{what}: missing file {path.name} in folder {path.parent}", hint),
                             what=what, missing=[path.name], folder=path.parent, hint=hint)
    return path


def require_any(folder: str | os.PathLike[str], names: list[str], what: str, hint: str = "") -> Path:
    """The first of `names` present in `folder` (weights may come as .safetensors or .bin),
    else a sharded checkpoint's index file."""
    folder = require_dir(folder, what)
    hit = first_present(folder, names)
    if hit is not None:
        return hit
    for pattern in ("*.safetensors.index.json", "*.bin.index.json"):
        found = sorted(folder.glob(pattern))
        if found:
            return found[0]
    raise MissingWeights(_with_hint(f"{what}: none of {names} found in folder {folder}", hint),
                         what=what, missing=[" or ".join(names)], folder=folder, hint=hint)


def require_hf_folder(folder: str | os.PathLike[str], what: str, extra_files: tuple[str, ...] = ()) -> Path:
    """An HF-layout model folder: config.json + weights (+ processor/tokenizer files)."""
    folder = require_dir(folder, what)
    require_file(folder / "config.json", what, HF_HINT)
    require_any(folder, ["model.safetensors", "pytorch_model.bin"], what, HF_HINT)
    for name in extra_files:
        require_file(folder / name, what, HF_HINT)
    return folder


def require_files(
    what: str, folder: Path, files: Sequence[str | tuple[str, ...]], hint: str = ""
) -> dict[str, Path]:
    """Paths of `files` inside `folder`, or MissingWeights naming every absent one at once.

    A tuple entry means "any one of these" (e.g. model.safetensors or pytorch_model.bin);
    the key of a tuple entry is its first name.
    """
    found: dict[str, Path] = {}
    missing: list[str] = []
    for entry in files:
        options = (entry,) if isinstance(entry, str) else tuple(entry)
        hit = first_present(folder, options)
        if hit is None:
            missing.append(" or ".join(options))
        else:
            found[options[0]] = hit
    if missing:
        where = f"{Path(folder).resolve()}" + ("" if Path(folder).is_dir() else " (the folder does not exist)")
        message = _with_hint(f"{what} needs {', '.join(missing)}, not found in {where}", hint)
        raise MissingWeights(message, what=what, missing=missing, folder=folder, hint=hint)
    return found


# --------------------------------------------------------------------------- random stand-ins
def is_tiny_random(folder: str | os.PathLike[str]) -> bool:
    """True for a folder written by `datagen.testing` (random weights: its outputs are meaningless)."""
    if (Path(folder) / TINY_MARKER).is_file():
        return True
    for name in ("config.json", "open_clip_config.json"):
        path = Path(folder) / name
        if path.is_file():
            try:
                return bool(json.loads(path.read_text()).get(TINY_MARKER, False))
            except ValueError:
                return False
    return False
