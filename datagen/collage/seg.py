"""seg.mask / det.box: mark the named object on an unchanged picture.

seg.mask: the output is the input with a half-transparent colour over exactly the object's
alpha region (every pixel = (input + colour + 1) // 2 there, untouched elsewhere).
det.box: the output is the input with a solid rectangle outline drawn `gap` px outside the
object's tight box, `thickness` px wide.
"""

from __future__ import annotations

import numpy as np

from datagen.collage import grid, instructions, palette, scene
from datagen.collage.compose import Unlucky
from datagen.schema import Picture, Region, Sample

VERSION = 1
OVERLAY_COLOURS = ("red", "green", "blue", "yellow", "cyan", "purple", "orange", "pink")
BOX_COLOURS = ("red", "green", "blue", "yellow", "cyan", "orange", "pink", "white", "black")


def _scene(rng, spec, pack):
    canvas = scene.populate(rng, pack, scene.any_background(rng, pack), int(rng.integers(1, spec.max_objects + 1)),
                            0.16, 0.32)
    if not canvas.objects:
        raise Unlucky("no_room")
    obj = canvas.objects[int(rng.integers(len(canvas.objects)))]
    return canvas, obj


def _sample(task, text, k, before, after, regions, meta, canvas, obj):
    meta = {**meta, "object": obj.name, "box_px": list(obj.box), "others": [o.name for o in canvas.objects
                                                                             if o is not obj],
            "position": grid.cell_of(*obj.centre, canvas.size), "background": canvas.background.name,
            "template": k}
    return Sample(task=task, instruction=text, inputs=[Picture(before, "source")], outputs=[Picture(after, "target")],
                  regions=regions, meta=meta, source_ids=canvas.source_ids(), generator=f"datagen.collage.seg@{VERSION}")


def make_mask(rng, spec, pack) -> Sample:
    canvas, obj = _scene(rng, spec, pack)
    size = canvas.size
    before = canvas.render()
    colour = OVERLAY_COLOURS[int(rng.integers(len(OVERLAY_COLOURS)))]
    mask = obj.mask(size)
    after = before.copy()
    x0, y0, x1, y1 = obj.box
    inside = obj.patch[:, :, 3] > 0
    region = after[y0:y1, x0:x1]
    mixed = (region.astype(np.uint16) + np.asarray(palette.NAMED[colour], np.uint16) + 1) // 2
    region[inside] = mixed[inside].astype(np.uint8)
    scene.visible_enough(before, after, mask, share=0.3)  # an overlay near its own colour barely shows
    text, k = instructions.say(rng, "seg.mask", obj=obj.name, colour=colour)
    regions = [Region("target", "input", 0, mask), Region("target", "output", 0, mask)]
    return _sample("seg.mask", text, k, before, after, regions,
                   {"colour": colour, "rgb": list(palette.NAMED[colour]), "opacity": 0.5}, canvas, obj)


def box_band(box, gap: int, thickness: int, size: int) -> np.ndarray:
    """Mask of a rectangle outline `gap` px outside `box` (x0, y0, x1, y1), clipped to the canvas."""
    x0, y0, x1, y1 = box
    ox0, oy0, ox1, oy1 = x0 - gap - thickness, y0 - gap - thickness, x1 + gap + thickness, y1 + gap + thickness
    band = np.zeros((size, size), bool)
    band[max(0, oy0) : max(0, oy1), max(0, ox0) : max(0, ox1)] = True
    band[max(0, y0 - gap) : max(0, y1 + gap), max(0, x0 - gap) : max(0, x1 + gap)] = False
    return band


def make_box(rng, spec, pack) -> Sample:
    canvas, obj = _scene(rng, spec, pack)
    size = canvas.size
    before = canvas.render()
    thickness = max(1, int(round(size * rng.uniform(0.005, 0.01))))
    gap = max(1, size // 128)
    # The outline is drawn over whatever lies there (a neighbour, the canvas border clips it):
    # the changed pixels are exactly the band either way.
    colour = BOX_COLOURS[int(rng.integers(len(BOX_COLOURS)))]
    band = box_band(obj.box, gap, thickness, size)
    after = before.copy()
    after[band] = palette.NAMED[colour]
    scene.visible_enough(before, after, band, share=0.6, level=60)  # a box must stand out, not whisper
    text, k = instructions.say(rng, "det.box", obj=obj.name, colour=colour, thickness=thickness)
    regions = [Region("target", "input", 0, obj.mask(size)), Region("box", "output", 0, band)]
    meta = {"colour": colour, "rgb": list(palette.NAMED[colour]), "thickness": thickness, "gap": gap}
    return _sample("det.box", text, k, before, after, regions, meta, canvas, obj)
