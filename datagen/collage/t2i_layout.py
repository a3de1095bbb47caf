"""t2i.layout: stickers in exact spatial relations ("a cat to the left of a star").

"A left of B" means A's box ends before B's begins and their vertical spans overlap (so
A is beside B, not diagonally away); "above"/"below" are the same turned 90 degrees. The
generator places each object inside the half-plane its relation allows.
"""

from __future__ import annotations

from datagen.collage import compose, instructions, palette, scene
from datagen.collage.compose import Placed, Unlucky
from datagen.schema import Picture, Region, Sample

VERSION = 1
RELATIONS = ("to the left of", "to the right of", "above", "below")


def centre_area(rel: str, anchor: Placed, w: int, h: int, size: int, gap: int, margin: int):
    """Where the centre of a w x h object may go so that it is `rel` the anchor."""
    ax0, ay0, ax1, ay1 = anchor.box
    if rel == "to the left of":
        return (margin + w / 2, ay0, ax0 - gap - w / 2, ay1)
    if rel == "to the right of":
        return (ax1 + gap + w / 2, ay0, size - margin - w / 2, ay1)
    if rel == "above":
        return (ax0, margin + h / 2, ax1, ay0 - gap - h / 2)
    return (ax0, ay1 + gap + h / 2, ax1, size - margin - h / 2)


def make(rng, spec, pack) -> Sample:
    size = pack.size
    n = int(rng.integers(2, 4))
    bg = scene.any_background(rng, pack)
    canvas = scene.Scene(bg)
    first = scene.pick_cutout(rng, pack, avoid_origin=bg.origin)
    canvas.objects.append(scene.place(rng, canvas, first, scene.object_px(rng, size, 0.18, 0.28)))
    relations = []
    for k in range(1, n):
        anchor_index = int(rng.integers(k))
        anchor = canvas.objects[anchor_index]
        cut = scene.pick_cutout(rng, pack, canvas.names(), bg.origin)
        patch = compose.fit(cut.premul, scene.object_px(rng, size, 0.16, 0.26))
        h, w = patch.shape[:2]
        # Only relations with room on that side of the anchor: fewer wasted draws.
        areas = {r: centre_area(r, anchor, w, h, size, scene.gap(size), scene.margin(size)) for r in RELATIONS}
        feasible = [r for r, a in areas.items() if a[0] <= a[2] and a[1] <= a[3]]
        if not feasible:
            raise Unlucky("no_room")
        rel = feasible[int(rng.integers(len(feasible)))]
        area = areas[rel]
        spot = compose.find_spot(rng, w, h, size, canvas.boxes(), margin=scene.margin(size),
                                 gap=scene.gap(size), area=area)
        if spot is None:
            raise Unlucky("no_room")
        canvas.objects.append(Placed(cut.name, cut.asset_id, patch, *spot))
        relations.append([k, rel, anchor_index])

    names = [o.name for o in canvas.objects]
    said = set()

    def mention(i: int) -> str:
        # First mention introduces ("a star"), later ones refer back ("the star").
        text = ("the " + names[i]) if i in said else palette.article(names[i])
        said.add(i)
        return text

    clauses = []
    for a, rel, b in relations:
        clauses.append(f"{mention(a)} {rel} {mention(b)}")
    text, t = instructions.say(rng, "t2i.layout", relations=instructions.listing(clauses),
                               background=palette.article(bg.name))
    regions = [Region(f"subject:{i}", "output", 0, o.mask(size)) for i, o in enumerate(canvas.objects)]
    meta = {"objects": names, "relations": relations, "boxes_px": [list(o.box) for o in canvas.objects],
            "background": bg.name, "template": t}
    return Sample(task="t2i.layout", instruction=text[0].upper() + text[1:], inputs=[],
                  outputs=[Picture(canvas.render(), "target")], regions=regions, meta=meta,
                  source_ids=canvas.source_ids(), generator=f"datagen.collage.t2i_layout@{VERSION}")
