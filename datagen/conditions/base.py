"""The annotator interface: a batch of images -> condition maps, plus the registry by name.

An annotator is built cheaply from its options (no heavy imports), checks its weights
before any work (`check_weights`), loads its model once per worker (`setup`), then maps a
batch of uint8 RGB images to uint8 condition maps of the same height and width:
HxW for single-channel kinds (edges, lines, depth), HxWx3 for colour kinds (pose, seg).
Output is deterministic: the same image gives the same bytes, batched or one at a time
(model backends: identical or off by one grey level, from float reduction order).

`__call__` is strict (one unusable image raises `ImageRejected`); `try_annotate` is what a
flow calls: it returns a map or an `ImageRejected` per image, so one bad image never sinks a
batch and every image is accounted for.
"""

from __future__ import annotations

import abc
import importlib.metadata
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from datagen import weights as lookup
from datagen.conditions import weights
from datagen.images import MIN_SIDE, ImageRejected, to_rgb
from datagen.portable import portable_cv

# Panoramas beyond this make detectors that resize the short side to 512 allocate huge
# rasters; they are rare and poor condition-reference targets anyway.
MAX_ASPECT = 8.0


# --------------------------------------------------------------------------- input normalisation
def prepare_image(pixels: np.ndarray, max_side: int | None = None) -> np.ndarray:
    """The RGB image an annotator sees (and a reference sample stores as its target).

    Raises ImageRejected for images no annotator can use; shrinks images whose long side
    exceeds `max_side` (area interpolation, aspect kept) when one is given.
    """
    rgb = to_rgb(pixels, alpha="white")
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise ImageRejected("too_small", f"{w}x{h} is below {MIN_SIDE}px on a side")
    if max(h, w) / min(h, w) > MAX_ASPECT:
        raise ImageRejected("extreme_aspect", f"{w}x{h} is more elongated than {MAX_ASPECT:g}:1")
    if max_side is not None and max(h, w) > max_side:
        k = max_side / max(h, w)
        size = (max(MIN_SIDE, round(w * k)), max(MIN_SIDE, round(h * k)))
        with portable_cv():
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return rgb


def resize_to(map_: np.ndarray, height: int, width: int, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Bring a map computed at a working resolution back to its image's size."""
    if map_.shape[:2] == (height, width):
        return map_
    return cv2.resize(map_, (width, height), interpolation=interpolation)


def working_size(height: int, width: int, short_side: int, multiple: int = 1) -> tuple[int, int]:
    """(h, w) with the short side scaled to `short_side`, each rounded to `multiple`."""
    k = short_side / min(height, width)
    h = max(multiple, int(round(height * k / multiple)) * multiple)
    w = max(multiple, int(round(width * k / multiple)) * multiple)
    return h, w


def default_micro_batch(device: str, micro_batch: int | None) -> int:
    """Images per forward pass. On CPU one image already keeps every core busy and a batch
    of 512px activations costs gigabytes, so batching only pays on accelerators."""
    if micro_batch:
        return max(1, int(micro_batch))
    return 1 if str(device).startswith("cpu") else 8


def package_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


# --------------------------------------------------------------------------- the interface
class Annotator(abc.ABC):
    name: str = ""  # registry name, e.g. "canny", "openpose_full"
    kind: str = ""  # condition kind: the task becomes ref.<kind>
    version: str = "1"  # bump when the same input would give different bytes
    needs_weights: bool = False
    consumes: str = "image"  # what __call__ takes: "image" (pixels) or "sample" (records)
    _ready = False
    _loaded: frozenset[str] = frozenset()  # attributes setup() created (models, processors)

    # -- weights ------------------------------------------------------------------
    weights_dir: str | os.PathLike[str] | None = None
    weights_layout: str = ""  # folder name under $UNIMONTAGE_WEIGHTS when weights_dir is None
    weights_hint: str = ""  # where to get the files, for the error message

    def weight_files(self) -> list[str | tuple[str, ...]]:
        """Files needed in the weights folder; a tuple means any one of them."""
        return []

    def weights_folder(self, weights_dir: str | os.PathLike[str] | None = None) -> Path:
        return lookup.resolve_dir(weights_dir if weights_dir is not None else self.weights_dir, self.weights_layout)

    def check_weights(self, weights_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
        """Paths of the weight files, or MissingWeights naming the file and the folder.

        Cheap (no imports, no reads): call it on the driver before any work is scheduled.
        """
        if not self.needs_weights:
            return {}
        folder = self.weights_folder(weights_dir)
        return lookup.require_files(self.name, folder, self.weight_files(), self.weights_hint)

    def weight_digests(self) -> dict[str, str]:
        return {name: weights.file_digest(path) for name, path in self.check_weights().items()}

    # -- lifecycle ----------------------------------------------------------------
    def setup(self) -> None:
        """Load the model; idempotent, called once per worker/actor."""
        if not self._ready:
            self.check_weights()
            before = set(self.__dict__)
            self._load()
            self._loaded = frozenset(set(self.__dict__) - before)
            self._ready = True

    def _load(self) -> None:
        pass

    def __getstate__(self) -> dict[str, Any]:
        # Shipping an annotator to a worker sends its configuration, never a loaded model:
        # the worker calls setup() itself.
        state = {k: v for k, v in self.__dict__.items() if k not in self._loaded}
        state.pop("_loaded", None)
        state.pop("_ready", None)
        return state

    # -- work -----------------------------------------------------------------------
    @abc.abstractmethod
    def _annotate(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Prepared HxWx3 uint8 images -> maps of the same HxW."""

    def __call__(self, batch: Sequence[np.ndarray]) -> list[np.ndarray]:
        images = [prepare_image(x) for x in batch]
        if not images:
            return []
        self.setup()
        return self._run(images)

    def try_annotate(self, batch: Sequence[np.ndarray]) -> list[np.ndarray | ImageRejected]:
        """One map or one ImageRejected per input, in order; never raises for a bad image."""
        results: list[np.ndarray | ImageRejected | None] = [None] * len(batch)
        good: list[tuple[int, np.ndarray]] = []
        for i, pixels in enumerate(batch):
            try:
                good.append((i, prepare_image(pixels)))
            except ImageRejected as exc:
                results[i] = exc
        if good:
            self.setup()  # configuration errors (missing weights) still raise: they are not data
            try:
                maps = self._run([img for _, img in good])
            except Exception as batch_error:
                # Find the culprit one image at a time (batching equals one-at-a-time). When
                # every image fails, the annotator is broken, not the data: raise.
                maps = [self._annotate_one_or_reject(img) for _, img in good]
                if len(maps) > 1 and all(isinstance(m, ImageRejected) for m in maps):
                    raise batch_error
            for (i, _), m in zip(good, maps):
                results[i] = m
        return results  # type: ignore[return-value]

    def _run(self, images: list[np.ndarray]) -> list[np.ndarray]:
        # OpenCV's dispatched kernels (and IPP) resize and blur with CPU-specific rounding:
        # annotators run on its baseline kernels, so a map has the same bytes on any CPU.
        with portable_cv():
            return self._annotate(images)

    def _annotate_one_or_reject(self, image: np.ndarray) -> np.ndarray | ImageRejected:
        try:
            return self._run([image])[0]
        except Exception as exc:  # a model failing on one image is that image's reject
            return ImageRejected("annotator_error", f"{self.name}: {type(exc).__name__}: {exc}")

    # -- identity -------------------------------------------------------------------
    def options(self) -> dict[str, Any]:
        return {}

    def describe(self) -> dict[str, Any]:
        """What made a map: recorded in every sample's meta."""
        info: dict[str, Any] = {"name": self.name, "kind": self.kind, "version": self.version}
        info["options"] = self.options()
        digests = self.weight_digests()
        if digests:
            info["weights"] = digests
        return info

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({self.name}@{self.version}{', ' if opts else ''}{opts})"


# --------------------------------------------------------------------------- registry
ANNOTATORS: dict[str, Callable[..., Annotator]] = {}


def register(name: str, factory: Callable[..., Annotator]) -> None:
    if name in ANNOTATORS:
        raise ValueError(f"annotator {name!r} is registered twice")
    ANNOTATORS[name] = factory


def make_annotator(name: str, **options: Any) -> Annotator:
    """Build a registered annotator by name: `make_annotator("canny", low=100, high=200)`."""
    try:
        factory = ANNOTATORS[name]
    except KeyError:
        raise ValueError(f"unknown annotator {name!r}; known: {', '.join(sorted(ANNOTATORS))}") from None
    return factory(**options)
