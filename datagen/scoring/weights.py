"""Local model folders: check that the files a backend needs are there, before any work.

No machine reaches a model hub, so every model-backed step takes a local path. When a file
is missing the error names the file, the folder it looked in, and what to put there.
"""

from __future__ import annotations

from pathlib import Path


class MissingWeights(FileNotFoundError):
    """A model file is not where the configuration says it is."""


def require_dir(folder: str | Path, what: str) -> Path:
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise MissingWeights(f"{what}: model folder {folder} does not exist")
    return folder


def require_file(path: str | Path, what: str, hint: str = "") -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        extra = f"; {hint}" if hint else ""
        raise MissingWeights(f"{what}: missing file {path.name} in folder {path.parent}{extra}")
    return path


def require_any(folder: str | Path, names: list[str], what: str, hint: str = "") -> Path:
    """The first of `names` present in `folder` (weights may come as .safetensors or .bin)."""
    folder = require_dir(folder, what)
    for name in names:
        if (folder / name).is_file():
            return folder / name
    for pattern in ("*.safetensors.index.json", "*.bin.index.json"):
        found = sorted(folder.glob(pattern))
        if found:
            return found[0]
    extra = f"; {hint}" if hint else ""
    raise MissingWeights(f"{what}: none of {names} found in folder {folder}{extra}")


def require_hf_folder(folder: str | Path, what: str, extra_files: tuple[str, ...] = ()) -> Path:
    """An HF-layout model folder: config.json + weights (+ processor/tokenizer files)."""
    hint = "download the model once on a machine with internet (huggingface-cli download ...) and copy the folder"
    folder = require_dir(folder, what)
    require_file(folder / "config.json", what, hint)
    require_any(folder, ["model.safetensors", "pytorch_model.bin"], what, hint)
    for name in extra_files:
        require_file(folder / name, what, hint)
    return folder
