"""From a stored row's `regions` to routing pairs: which input tokens are the reference of
which instance in which output, at the patch grids the model sees.

A pair is an input-side region and an output-side region that name the same instance.
`routing_pairs` (config) lists name prefixes: "subject" pairs `subject:0` on an input with
`subject:0` on an output (ref.subject: a reference image -> that subject in the scene);
"object" pairs drag's object before and after; "replaced>replacement" pairs regions whose
names differ (the replaced object -> its replacement). Names pair when what follows the
prefix is the same on both sides.

Masks are decoded from their PNGs; a region with only a box is rasterised from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from training.sizes import grid_coverage

BOX_RASTER = 8  # box regions are drawn this many pixels per cell, then area-averaged


@dataclass(frozen=True)
class PairSpec:
    source: str  # name prefix of the input-side region
    target: str  # name prefix of the output-side region


def parse_pairs(specs: list[str]) -> list[PairSpec]:
    """`["subject", "replaced>replacement"]` -> PairSpecs; a malformed entry is a ValueError."""
    out = []
    for spec in specs:
        left, sep, right = spec.partition(">")
        left, right = left.strip(), right.strip()
        if not left or (sep and not right):
            raise ValueError(f"routing_pairs: {spec!r} is not NAME or INPUT_NAME>OUTPUT_NAME")
        out.append(PairSpec(left, right or left))
    return out


def suffix(name: str, prefix: str) -> str | None:
    """What follows `prefix` in a region name ("subject:0", "subject" -> ":0"); None when it does not match."""
    if name == prefix:
        return ""
    if name.startswith(prefix) and name[len(prefix)] in ": .":
        return name[len(prefix):]
    return None


def _coverage(region: dict[str, Any], grid: tuple[int, int]) -> np.ndarray:
    from datagen.images import decode

    if region.get("mask") is not None:
        return grid_coverage(decode(region["mask"]) > 127, grid)
    x0, y0, x1, y1 = (float(v) for v in region["box"])
    gh, gw = grid
    canvas = np.zeros((gh * BOX_RASTER, gw * BOX_RASTER), bool)
    canvas[round(y0 * gh * BOX_RASTER):round(y1 * gh * BOX_RASTER),
           round(x0 * gw * BOX_RASTER):round(x1 * gw * BOX_RASTER)] = True
    return grid_coverage(canvas, grid)


def route_pairs(regions: list[dict[str, Any]] | None, specs: list[PairSpec], in_grids: list[tuple[int, int]],
                out_grids: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """Pairs of one row: [{"in_image", "out_image", "query": (gh, gw) coverage, "target": (gh, gw) coverage}].

    Regions pointing at an image the row does not have are skipped, not guessed.
    """
    regions = regions or []
    inputs = [r for r in regions if r.get("side") == "input" and 0 <= int(r["image"]) < len(in_grids)]
    outputs = [r for r in regions if r.get("side") == "output" and 0 <= int(r["image"]) < len(out_grids)]
    pairs, seen = [], set()
    for spec in specs:
        for a in inputs:
            sa = suffix(a["name"], spec.source)
            if sa is None:
                continue
            for b in outputs:
                if suffix(b["name"], spec.target) != sa or (a["name"], b["name"], b["image"]) in seen:
                    continue
                seen.add((a["name"], b["name"], b["image"]))
                pairs.append({"in_image": int(a["image"]), "out_image": int(b["image"]),
                              "query": _coverage(a, in_grids[int(a["image"])]),
                              "target": _coverage(b, out_grids[int(b["image"])])})
    return pairs
