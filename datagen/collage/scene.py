"""A scene: one background plus non-overlapping objects, and the draws that build it.

Objects never overlap (their boxes keep a gap), so every object's mask is its whole alpha,
removing one restores exactly the background under it, and spatial words are unambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from datagen.collage import compose, palette
from datagen.collage.compose import Placed, Unlucky
from datagen.collage.pack import PreparedCutout, PreparedPack

# Share of canvases that use a pack background; the rest are drawn plain or as gradients.
PACK_BACKGROUND_P = 0.7


@dataclass
class Background:
    pixels: np.ndarray  # size x size x 3
    name: str  # noun phrase without article: "brick wall", "plain beige background"
    asset_id: str = ""  # empty for procedural backgrounds
    origin: str = ""
    colours: tuple = ()  # the RGB values a procedural background is made of


@dataclass
class Scene:
    background: Background
    objects: list[Placed] = field(default_factory=list)

    @property
    def size(self) -> int:
        return self.background.pixels.shape[0]

    def render(self) -> np.ndarray:
        canvas = self.background.pixels.copy()
        for obj in self.objects:
            compose.blend(canvas, obj.patch, obj.x, obj.y)
        return canvas

    def boxes(self, skip: Placed | None = None) -> list[tuple[int, int, int, int]]:
        return [o.box for o in self.objects if o is not skip]

    def names(self) -> set[str]:
        return {o.name for o in self.objects}

    def source_ids(self) -> list[str]:
        ids = [self.background.asset_id] if self.background.asset_id else []
        return ids + [o.asset_id for o in self.objects]


def margin(size: int) -> int:
    return max(2, size // 64)


def gap(size: int) -> int:
    return max(3, size // 48)


# --------------------------------------------------------------------------- backgrounds
def plain(size: int, name: str) -> Background:
    rgb = palette.BACKGROUNDS[name]
    row = np.array([rgb] * size, np.uint8)  # broadcasting one row is much faster than np.full
    return Background(np.broadcast_to(row, (size, size, 3)).copy(), f"plain {name} background", colours=(rgb,))


def gradient(size: int, start: str, end: str, vertical: bool) -> Background:
    c0, c1 = (np.asarray(palette.BACKGROUNDS[n], np.float32) for n in (start, end))
    t = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None]
    ramp = np.round(c0 + t * (c1 - c0)).astype(np.uint8)  # size x 3
    pixels = np.broadcast_to(ramp[:, None, :] if vertical else ramp[None, :, :], (size, size, 3)).copy()
    way = "vertical" if vertical else "horizontal"
    return Background(pixels, f"{way} {start} to {end} gradient", colours=(tuple(c0), tuple(c1)))


def procedural(rng, size: int, names=None) -> Background:
    names = list(names or palette.BACKGROUNDS)
    if rng.random() < 0.5 or len(names) < 2:
        return plain(size, names[int(rng.integers(len(names)))])
    i, j = rng.choice(len(names), 2, replace=False)
    return gradient(size, names[int(i)], names[int(j)], bool(rng.random() < 0.5))


def from_pack(rng, pack: PreparedPack) -> Background:
    bg = pack.backgrounds[int(rng.integers(len(pack.backgrounds)))]
    size = pack.size
    h, w = bg.pixels.shape[:2]
    y = int(rng.integers(0, h - size + 1))
    x = int(rng.integers(0, w - size + 1))
    crop = bg.pixels[y : y + size, x : x + size]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return Background(np.ascontiguousarray(crop), bg.name, bg.asset_id, bg.origin)


def blank(rng, size: int) -> Background:
    """A plain colour canvas (DreamOmni adds objects on blank backgrounds)."""
    names = list(palette.BACKGROUNDS)
    return plain(size, names[int(rng.integers(len(names)))])


def any_background(rng, pack: PreparedPack) -> Background:
    if pack.backgrounds and rng.random() < PACK_BACKGROUND_P:
        return from_pack(rng, pack)
    return procedural(rng, pack.size)


# --------------------------------------------------------------------------- objects
def pick_cutout(rng, pack: PreparedPack, avoid_names=(), avoid_origin: str = "") -> PreparedCutout:
    """A cutout whose name differs from every name in `avoid_names` (so "the X" is unique)."""
    ok = [c for c in pack.cutouts if c.name not in avoid_names and not (avoid_origin and c.origin == avoid_origin)]
    if not ok:
        raise Unlucky("no_distinct_cutout")
    return ok[int(rng.integers(len(ok)))]


def object_px(rng, size: int, lo: float, hi: float) -> int:
    return max(12, int(round(size * rng.uniform(lo, hi))))


def place(rng, scene: Scene, cutout: PreparedCutout, longest: int, area=None, skip: Placed | None = None) -> Placed:
    """Fit `cutout` to `longest` px and put it somewhere free (centre inside `area` if given)."""
    return place_tracked(rng, scene, cutout, longest, area, skip)[0]


def place_tracked(rng, scene: Scene, cutout: PreparedCutout, longest: int, area=None,
                  skip: Placed | None = None) -> tuple[Placed, np.ndarray]:
    """`place`, plus the 3x3 affine taking the cutout's master pixels (index coordinates) to the
    canvas's, so another rendering of the same cutout can be related to this one exactly."""
    patch, to_patch = compose.resize(cutout.premul, longest)
    size = scene.size
    spot = compose.find_spot(rng, patch.shape[1], patch.shape[0], size, scene.boxes(skip),
                             margin=margin(size), gap=gap(size), area=area)
    if spot is None:
        raise Unlucky("no_room")
    to_canvas = np.array([[1.0, 0.0, spot[0]], [0.0, 1.0, spot[1]], [0.0, 0.0, 1.0]]) @ np.vstack([to_patch, [0, 0, 1]])
    return Placed(cutout.name, cutout.asset_id, patch, spot[0], spot[1]), to_canvas


def populate(rng, pack: PreparedPack, background: Background, count: int, lo: float = 0.16, hi: float = 0.3,
             avoid_names=()) -> Scene:
    """A scene with `count` distinct-named objects (fewer if the canvas runs out of room)."""
    scene = Scene(background)
    for _ in range(count):
        cut = pick_cutout(rng, pack, set(avoid_names) | scene.names(), background.origin)
        try:
            scene.objects.append(place(rng, scene, cut, object_px(rng, scene.size, lo, hi)))
        except Unlucky:
            break  # a busy canvas simply keeps fewer distractors
    return scene


def visible_enough(before: np.ndarray, after: np.ndarray, mask: np.ndarray, share: float = 0.6,
                   level: int = 16) -> None:
    """Refuse edits a viewer could not see (an object that matches its background)."""
    if compose.changed_fraction(before, after, mask, level) < share:
        raise Unlucky("low_contrast")
