"""Segmentation maps from exact regions (no weights): collages know every subject's mask.

Each instance gets a fixed colour by its index among the drawn regions (`PALETTE[k + 1]`;
`PALETTE[0]` is the black background), painted in record order so a later subject covers an
earlier one where they overlap, as it does in the composited image. The same regions always
give the same bytes. Unlike the image annotators, this one reads sample records, not pixels.
"""

from __future__ import annotations

import colorsys
from typing import Any, Sequence

import numpy as np

from datagen.conditions.base import Annotator, register
from datagen.images import ImageRejected
from datagen.schema import Region, Sample

_GOLDEN = 0.6180339887498949


def _make_palette(n: int) -> np.ndarray:
    """n RGB colours: black, then golden-ratio hues cycling three brightness levels, so
    neighbouring indices always differ clearly in hue and often in brightness."""
    colours = [(0, 0, 0)]
    for k in range(n - 1):
        hue = (k * _GOLDEN) % 1.0
        sat = (0.95, 0.7, 0.85)[k % 3]
        val = (1.0, 0.8, 0.6)[(k // 3) % 3]
        r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return np.array(colours, dtype=np.uint8)


PALETTE = _make_palette(256)
MAX_INSTANCES = len(PALETTE) - 1


def seg_map(masks: Sequence[np.ndarray], height: int, width: int) -> np.ndarray:
    """HxWx3 uint8 map: instance k painted with PALETTE[k + 1] over black, later on top."""
    if len(masks) > MAX_INSTANCES:
        raise ImageRejected("too_many_regions", f"{len(masks)} regions; the palette has {MAX_INSTANCES} colours")
    index = np.zeros((height, width), dtype=np.uint8)
    for k, mask in enumerate(masks):
        if mask.shape[:2] != (height, width):
            raise ImageRejected("region_mismatch", f"mask {mask.shape[:2]} on a {height}x{width} image")
        index[mask.astype(bool)] = k + 1
    return PALETTE[index]


def select_regions(regions: Sequence[Region], side: str, image: int, names: Sequence[str] | None) -> list[Region]:
    """Regions with masks that lie on one image, optionally only those whose name matches
    one of `names` exactly or as a prefix ending in ':' ("subject:" selects "subject:0", ...)."""

    def wanted(name: str) -> bool:
        return names is None or any(name == n or (n.endswith(":") and name.startswith(n)) for n in names)

    return [r for r in regions if r.side == side and r.image == image and r.mask is not None and wanted(r.name)]


class SegFromRegionsAnnotator(Annotator):
    name = "seg_regions"
    kind = "seg"
    version = "1"
    consumes = "sample"

    def __init__(self, side: str = "output", image: int = 0, names: Sequence[str] | None = None):
        super().__init__()
        if side not in ("input", "output"):
            raise ValueError(f"side must be 'input' or 'output', not {side!r}")
        self.side, self.image = side, int(image)
        self.names = list(names) if names is not None else None

    def options(self) -> dict[str, Any]:
        return {"side": self.side, "image": self.image, "names": self.names}

    def map_for(self, sample: Sample) -> np.ndarray:
        pictures = sample.outputs if self.side == "output" else sample.inputs
        if not 0 <= self.image < len(pictures):
            raise ImageRejected("no_image", f"sample has no {self.side} image {self.image}")
        h, w = pictures[self.image].height, pictures[self.image].width
        regions = select_regions(sample.regions, self.side, self.image, self.names)
        return seg_map([r.mask for r in regions], h, w)  # type: ignore[misc]

    def _annotate(self, images: list[np.ndarray]) -> list[np.ndarray]:
        raise TypeError("seg_regions maps sample records, not pixels: call it with a list of Sample")

    def __call__(self, batch: Sequence[Sample]) -> list[np.ndarray]:  # type: ignore[override]
        return [self.map_for(s) for s in batch]

    def try_annotate(self, batch: Sequence[Sample]) -> list[np.ndarray | ImageRejected]:  # type: ignore[override]
        results: list[np.ndarray | ImageRejected] = []
        for sample in batch:
            try:
                results.append(self.map_for(sample))
            except ImageRejected as exc:
                results.append(exc)
        return results


register("seg_regions", SegFromRegionsAnnotator)
