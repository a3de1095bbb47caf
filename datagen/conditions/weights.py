"""Annotator weights: their layout, their digests, and loading them without executing untrusted code.

Every model-backed annotator names the files it needs in a local folder and fails with
`datagen.weights.MissingWeights` *before* any work starts when one is absent. The folder is
the annotator's `weights_dir` argument, else `$UNIMONTAGE_WEIGHTS/<layout>` (`Annotators` for
the lllyasviel/Annotators files controlnet_aux uses, the HF repo name for transformers
models), else `./weights/<layout>` (the lookup lives in `datagen.weights`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import threading
from pathlib import Path
from typing import Any, Iterator

ANNOTATORS_LAYOUT = "Annotators"  # https://huggingface.co/lllyasviel/Annotators
ANNOTATORS_HINT = "download the files from the lllyasviel/Annotators repository (Hugging Face hub) into that folder"


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
