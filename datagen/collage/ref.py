"""ref.canny / ref.seg / ref.subject: a condition or reference image -> the composite.

ref.canny: the condition is OpenCV's Canny of the target itself (lossless 0/255).
ref.seg: the condition paints each object's exact region (alpha >= 50%) in a named colour on
black. ref.subject: each input shows one object alone on a neutral background; the target
is a new composite containing all of them, unrotated and unflipped.
"""

from __future__ import annotations

import cv2
import numpy as np

from datagen.collage import compose, grid, instructions, palette, scene
from datagen.collage.compose import Unlucky
from datagen.schema import Picture, Region, Sample

VERSION = 1
CANNY_LOW = (50, 110)
CANNY_HIGH_OVER_LOW = (2.0, 3.0)
SEG_BACKGROUND = (0, 0, 0)
SEG_COLOURS = ("red", "green", "blue", "yellow", "cyan", "purple", "orange", "pink")
SEG_LABEL_ALPHA = 128  # a pixel belongs to the object when it is at least half the object
NEUTRAL = {"white": (255, 255, 255), "light grey": (224, 224, 224)}


def _caption(canvas: scene.Scene) -> str:
    things = instructions.listing([palette.article(o.name) for o in canvas.objects])
    return f"{things} on {palette.article(canvas.background.name)}"


def _scene(rng, spec, pack, lo: int = 1) -> scene.Scene:
    canvas = scene.populate(rng, pack, scene.any_background(rng, pack), int(rng.integers(lo, spec.max_objects + 1)),
                            0.18, 0.32)
    if len(canvas.objects) < lo:
        raise Unlucky("no_room")
    return canvas


def _out(task, text, k, cond, role, target, regions, meta, canvas, ids=None):
    meta = {**meta, "objects": [o.name for o in canvas.objects], "background": canvas.background.name, "template": k}
    return Sample(task=task, instruction=text, inputs=[Picture(c, role) for c in cond], outputs=[Picture(target, "target")],
                  regions=regions, meta=meta, source_ids=ids or canvas.source_ids(),
                  generator=f"datagen.collage.ref@{VERSION}")


def _object_regions(canvas: scene.Scene) -> list[Region]:
    return [Region(f"subject:{i}", "output", 0, o.mask(canvas.size)) for i, o in enumerate(canvas.objects)]


def make_canny(rng, spec, pack) -> Sample:
    canvas = _scene(rng, spec, pack)
    target = canvas.render()
    low = int(rng.integers(CANNY_LOW[0], CANNY_LOW[1] + 1))
    high = int(round(low * rng.uniform(*CANNY_HIGH_OVER_LOW)))
    edges = cv2.Canny(target, low, high)  # 3-channel input: gradient of the strongest channel
    if np.count_nonzero(edges) < 0.002 * edges.size:
        raise Unlucky("no_edges")
    text, k = instructions.say(rng, "ref.canny", caption=_caption(canvas))
    return _out("ref.canny", text, k, [edges], "condition", target, _object_regions(canvas),
                {"canny_low": low, "canny_high": high, "canny_aperture": 3, "canny_l2": False}, canvas)


def make_seg(rng, spec, pack) -> Sample:
    canvas = _scene(rng, spec, pack)
    target = canvas.render()
    size = canvas.size
    seg = np.zeros((size, size, 3), np.uint8)
    seg[:] = SEG_BACKGROUND
    # A legend like "yellow marks a green triangle" is true but confusing: skip colour words
    # that occur in the object's own name.
    pool = [str(c) for c in rng.permutation(SEG_COLOURS)]
    colours = []
    for obj in canvas.objects:
        colour = next((c for c in pool if c not in obj.name.split()), pool[0])
        pool.remove(colour)
        colours.append(colour)
    for obj, colour in zip(canvas.objects, colours):
        x0, y0, x1, y1 = obj.box
        seg[y0:y1, x0:x1][obj.patch[:, :, 3] >= SEG_LABEL_ALPHA] = palette.NAMED[colour]
    legend = instructions.listing([f"{c} marks {palette.article(o.name)}" for c, o in zip(colours, canvas.objects)])
    text, k = instructions.say(rng, "ref.seg", legend=legend, background=palette.article(canvas.background.name))
    meta = {"labels": [{"object": o.name, "colour": c, "rgb": list(palette.NAMED[c])}
                       for o, c in zip(canvas.objects, colours)],
            "background_rgb": list(SEG_BACKGROUND), "label_alpha": SEG_LABEL_ALPHA}
    return _out("ref.seg", text, k, [seg], "condition", target, _object_regions(canvas), meta, canvas)


def _alone(obj_patch: np.ndarray, size: int, neutral) -> tuple[np.ndarray, np.ndarray]:
    """The object centred on a flat neutral canvas, long side 70% of it; returns (image, mask)."""
    patch = compose.fit(obj_patch, int(round(0.7 * size)))
    h, w = patch.shape[:2]
    x, y = (size - w) // 2, (size - h) // 2
    img = np.broadcast_to(np.array([neutral] * size, np.uint8), (size, size, 3)).copy()
    compose.blend(img, patch, x, y)
    return img, compose.patch_mask(patch, x, y, size)


def make_subject(rng, spec, pack) -> Sample:
    size = pack.size
    n = int(rng.integers(1, min(3, spec.max_objects) + 1))
    bg = scene.any_background(rng, pack)
    canvas = scene.Scene(bg)
    neutral_name = list(NEUTRAL)[int(rng.integers(len(NEUTRAL)))]
    refs, regions = [], []
    for i in range(n):
        cut = scene.pick_cutout(rng, pack, canvas.names(), bg.origin)
        where = list(grid.CELLS)[int(rng.integers(len(grid.CELLS)))]
        obj = scene.place(rng, canvas, cut, scene.object_px(rng, size, 0.2, 0.34), area=grid.cell_area(where, size))
        canvas.objects.append(obj)
        image, mask = _alone(cut.premul, size, NEUTRAL[neutral_name])
        refs.append(image)
        regions.append(Region(f"subject:{i}", "input", i, mask))
    target = canvas.render()
    for i, obj in enumerate(canvas.objects):
        regions.append(Region(f"subject:{i}", "output", 0, obj.mask(size)))
    names = [f"the {o.name} from <image {i + 1}>" for i, o in enumerate(canvas.objects)]
    placement = instructions.listing([f"the {o.name} {grid.PHRASES[grid.cell_of(*o.centre, size)]}"
                                      for o in canvas.objects])
    text, k = instructions.say(rng, "ref.subject", subjects=instructions.listing(names), placement=placement,
                               refs=instructions.listing([f"<image {i + 1}>" for i in range(n)]),
                               background=palette.article(bg.name))
    meta = {"neutral": neutral_name, "neutral_rgb": list(NEUTRAL[neutral_name]),
            "positions": [grid.cell_of(*o.centre, size) for o in canvas.objects],
            "boxes_px": [list(o.box) for o in canvas.objects]}
    return _out("ref.subject", text[0].upper() + text[1:], k, refs, "reference", target, regions, meta, canvas)
