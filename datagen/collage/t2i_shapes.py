"""t2i.shapes: counted, coloured, sized shapes, optionally gathered in a named place.

"three red circles and one small blue square in the top left corner": every group has its
own colour, so a checker can count connected blobs of that exact colour; the background is
plain or a gradient whose colours stay far from every shape colour.
"""

from __future__ import annotations

import cv2
import numpy as np

from datagen.collage import compose, grid, instructions, palette, scene
from datagen.collage.compose import Placed, Unlucky
from datagen.schema import Picture, Region, Sample

VERSION = 1

SHAPES = ("circle", "square", "triangle", "star", "diamond", "hexagon", "heart")
# Long side of a shape's box as a share of the canvas, per size word (gaps between them).
SIZES = {"small": (0.07, 0.09), "medium": (0.12, 0.15), "large": (0.19, 0.23)}
MIN_SHAPE_PX = 10
# Colours a shape may take: well apart from each other (see palette) and named plainly.
SHAPE_COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "cyan")
# A background colour must differ from every shape colour by this much (L-infinity).
BACKGROUND_SEPARATION = 60
# ...and in brightness, so yellow-on-white style pairs that are hard to see do not occur.
LUMINANCE_SEPARATION = 45
MAX_SHAPES = 8


def _outline(shape: str) -> np.ndarray:
    """Polygon in unit coordinates [-1, 1] (y down)."""
    if shape == "square":
        return np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)], np.float64)
    if shape == "triangle":
        return np.array([(0, -1), (1, 0.85), (-1, 0.85)], np.float64) * [1, 1.08] + [0, 0.08]
    if shape == "diamond":
        return np.array([(0, -1), (0.75, 0), (0, 1), (-0.75, 0)], np.float64)
    if shape == "hexagon":
        t = np.arange(6) * np.pi / 3
        return np.stack([np.cos(t), np.sin(t) * 0.95], 1)
    if shape == "star":
        t = np.arange(10) * np.pi / 5 - np.pi / 2
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        return np.stack([r * np.cos(t), r * np.sin(t) + 0.1], 1)
    if shape == "heart":
        t = np.linspace(0, 2 * np.pi, 120)
        x, y = 16 * np.sin(t) ** 3, -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        return np.stack([x / 16.5, (y + 2.5) / 16.5], 1)
    raise ValueError(shape)


def shape_alpha(shape: str, px: int) -> np.ndarray:
    """Anti-aliased coverage of `shape` filling a px x px box (drawn at 4x, averaged down)."""
    n = 4 * px
    big = np.zeros((n + 8, n + 8), np.uint8)
    if shape == "circle":
        cv2.circle(big, (n // 2 + 4, n // 2 + 4), n // 2, 255, -1)
    else:
        pts = np.round((_outline(shape) * 0.5 + 0.5) * (n - 1) + 4).astype(np.int32)
        cv2.fillPoly(big, [pts], 255)
    return cv2.resize(big, (px + 2, px + 2), interpolation=cv2.INTER_AREA)


def _background(rng, size: int, colours: list[str]) -> scene.Background:
    rgbs = [palette.NAMED[c] for c in colours]
    ok = [n for n, rgb in palette.BACKGROUNDS.items()
          if all(palette.colour_distance(rgb, c) >= BACKGROUND_SEPARATION
                 and abs(palette.luminance(rgb) - palette.luminance(c)) >= LUMINANCE_SEPARATION for c in rgbs)]
    if not ok:
        raise Unlucky("no_background_colour")
    if len(ok) >= 2 and rng.random() < 0.5:
        i, j = rng.choice(len(ok), 2, replace=False)
        a, b = palette.BACKGROUNDS[ok[int(i)]], palette.BACKGROUNDS[ok[int(j)]]
        if all(palette.segment_distance(c, a, b) >= BACKGROUND_SEPARATION
               and _outside(palette.luminance(c), palette.luminance(a), palette.luminance(b)) for c in rgbs):
            return scene.gradient(size, ok[int(i)], ok[int(j)], bool(rng.random() < 0.5))
    return scene.plain(size, ok[int(rng.integers(len(ok)))])


def _outside(lum: float, a: float, b: float) -> bool:
    """A gradient passes through every brightness between its ends: stay clear of all of them."""
    return lum <= min(a, b) - LUMINANCE_SEPARATION or lum >= max(a, b) + LUMINANCE_SEPARATION


def _plural(shape: str, n: int) -> str:
    return shape if n == 1 else shape + "s"


def make(rng, spec, pack) -> Sample:
    size = pack.size
    n_groups = int(rng.integers(1, 4))
    colours = [str(c) for c in rng.choice(SHAPE_COLOURS, n_groups, replace=False)]
    bg = _background(rng, size, colours)
    groups = []
    # Size words this canvas can draw: below MIN_SHAPE_PX a shape is not recognisable.
    words = [w for w, (_, hi) in SIZES.items() if hi * size >= MIN_SHAPE_PX]
    for colour in colours:
        count = int(rng.integers(1, 5))
        size_word = words[int(rng.integers(len(words)))]
        if size_word == "large":
            count = min(count, 2)
        where = list(grid.CELLS)[int(rng.integers(len(grid.CELLS)))] if rng.random() < 0.5 else None
        groups.append({"count": count, "colour": colour, "rgb": list(palette.NAMED[colour]),
                       "shape": SHAPES[int(rng.integers(len(SHAPES)))],
                       "size": size_word, "position": where})
    if sum(g["count"] for g in groups) > MAX_SHAPES:
        raise Unlucky("too_many_shapes")

    # Constrained groups first: they have the least room.
    canvas_scene = scene.Scene(bg)
    regions, placed_meta = [], []
    for g in sorted(groups, key=lambda g: g["position"] is None):
        rgb = palette.NAMED[g["colour"]]
        for k in range(g["count"]):
            lo, hi = SIZES[g["size"]]
            px = int(round(size * rng.uniform(max(lo, MIN_SHAPE_PX / size), hi)))
            alpha = shape_alpha(g["shape"], px)
            patch = np.dstack([(alpha.astype(np.uint16) * c // 255).astype(np.uint8) for c in rgb] + [alpha])
            patch = compose.clean(patch)[0]
            area = grid.cell_area(g["position"], size) if g["position"] else None
            spot = compose.find_spot(rng, patch.shape[1], patch.shape[0], size, canvas_scene.boxes(),
                                     margin=scene.margin(size), gap=scene.gap(size), area=area)
            if spot is None:
                raise Unlucky("no_room")
            obj = Placed(f"{g['colour']} {g['shape']} {k + 1}", "", patch, *spot)
            canvas_scene.objects.append(obj)
            regions.append(Region(obj.name, "output", 0, obj.mask(size)))
            placed_meta.append({"group": groups.index(g), "box_px": list(obj.box)})

    phrases = []
    for g in groups:
        words = f"{instructions.COUNT_WORDS[g['count']]} {g['size']} {g['colour']} {_plural(g['shape'], g['count'])}"
        phrases.append(words + (f" {grid.PHRASES[g['position']]}" if g["position"] else ""))
    text, k = instructions.say(rng, "t2i.shapes", groups=instructions.listing(phrases),
                               background=palette.article(bg.name))
    meta = {"groups": groups, "shapes": placed_meta, "background": bg.name,
            "background_rgb": [list(map(int, c)) for c in bg.colours], "template": k}
    return Sample(task="t2i.shapes", instruction=text[0].upper() + text[1:], inputs=[],
                  outputs=[Picture(canvas_scene.render(), "target")], regions=regions, meta=meta,
                  source_ids=[], generator=f"datagen.collage.t2i_shapes@{VERSION}")
