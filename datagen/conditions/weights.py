"""Finding local annotator weights, and loading them without executing untrusted code.

No machine reaches a model hub, so every model-backed annotator names the files it needs
in a local folder and fails with `MissingWeightsError` *before* any work starts when one is
absent. The folder is the annotator's `weights_dir` argument, else `$UNIMONTAGE_WEIGHTS/<layout>`
(`Annotators` for the lllyasviel/Annotators files controlnet_aux uses, the HF repo name for
transformers models), else `./weights/<layout>`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import threading
from pathlib import Path
from typing import Any, Iterator, Sequence

WEIGHTS_ENV = "UNIMONTAGE_WEIGHTS"
ANNOTATORS_LAYOUT = "Annotators"  # https://huggingface.co/lllyasviel/Annotators
ANNOTATORS_HINT = "download the files from the lllyasviel/Annotators repository (Hugging Face hub) into that folder"


class MissingWeightsError(FileNotFoundError):
    """A weight file an annotator needs is not in the folder it was looked for in."""

    def __init__(self, annotator: str, missing: Sequence[str], folder: Path, hint: str = ""):
        self.annotator = annotator
        self.missing = list(missing)
        self.folder = Path(folder)
        names = ", ".join(self.missing)
        where = f"{self.folder.resolve()}" + ("" if self.folder.is_dir() else " (the folder does not exist)")
        message = f"{annotator} needs {names}, not found in {where}"
        if hint:
            message += f"; {hint}"
        super().__init__(message)


def default_weights_dir(layout: str) -> Path:
    root = os.environ.get(WEIGHTS_ENV)
    return (Path(root) if root else Path("weights")) / layout


def resolve_dir(weights_dir: str | os.PathLike[str] | None, layout: str) -> Path:
    return Path(weights_dir) if weights_dir is not None else default_weights_dir(layout)


def require_files(
    annotator: str, folder: Path, files: Sequence[str | tuple[str, ...]], hint: str = ""
) -> dict[str, Path]:
    """Paths of `files` inside `folder`, or MissingWeightsError naming every absent one.

    A tuple entry means "any one of these" (e.g. model.safetensors or pytorch_model.bin);
    the key of a tuple entry is its first name.
    """
    found: dict[str, Path] = {}
    missing: list[str] = []
    for entry in files:
        options = (entry,) if isinstance(entry, str) else tuple(entry)
        hit = next((folder / name for name in options if (folder / name).is_file()), None)
        if hit is None:
            missing.append(" or ".join(options))
        else:
            found[options[0]] = hit
    if missing:
        raise MissingWeightsError(annotator, missing, folder, hint)
    return found


@functools.lru_cache(maxsize=64)
def _digest_cached(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()[:16]


def file_digest(path: Path) -> str:
    """Short sha256 of a weight file: which weights made a map is part of its lineage."""
    st = Path(path).stat()
    return _digest_cached(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def load_state_dict(path: Path) -> dict[str, Any]:
    """A checkpoint's tensors, never unpickling arbitrary objects (files are untrusted)."""
    import torch

    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    return torch.load(path, map_location="cpu", weights_only=True)


_TORCH_LOAD_LOCK = threading.Lock()


@contextlib.contextmanager
def weights_only_torch_load() -> Iterator[None]:
    """Make third-party `torch.load(path)` calls safe while the block runs.

    controlnet_aux calls `torch.load` without `weights_only`; torch>=2.6 defaults to True,
    but `TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD` would silently turn that off. Passing
    `weights_only=True` explicitly wins over the variable, and `map_location="cpu"` lets a
    checkpoint saved on a GPU load on a CPU worker. The lock keeps two loaders in one
    process from restoring each other's patch.
    """
    import torch

    with _TORCH_LOAD_LOCK:
        original = torch.load

        def guarded_load(f: Any, map_location: Any = "cpu", *args: Any, **kwargs: Any) -> Any:
            kwargs["weights_only"] = True
            kwargs.pop("pickle_module", None)
            return original(f, map_location, *args, **kwargs)

        torch.load = guarded_load
        try:
            yield
        finally:
            torch.load = original
