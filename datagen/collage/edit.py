"""edit.add / edit.remove / edit.replace: one object changes, every other pixel stays.

The scene is composited, so "before" and "after" differ exactly where the edited
object's alpha is > 0: removing an object reveals the true background behind it, and a
replacement sits centred where the old object was. edit.add draws a blank (plain colour)
canvas by default, as DreamOmni does; `CollageSpec.add_background="any"` draws photos too.
"""

from __future__ import annotations

from datagen.collage import compose, grid, instructions, palette, scene
from datagen.collage.compose import Unlucky
from datagen.schema import Picture, Region, Sample

VERSION = 2  # 2: edit.add on blank canvases by default
# Object size (long side) as a share of the canvas.
EDIT_SIZE = (0.2, 0.36)


def _distractors(rng, spec) -> int:
    return int(rng.integers(0, max(1, spec.max_objects)))


def _clear_object(rng, canvas: scene.Scene):
    """An object whose position word is unambiguous (its centre is not on a cell border)."""
    clear = [o for o in canvas.objects if grid.is_clear(*o.centre, canvas.size)]
    if not clear:
        raise Unlucky("ambiguous_position")
    return clear[int(rng.integers(len(clear)))]


def _sample(task: str, text: str, k: int, before, after, regions, meta, canvas: scene.Scene, extra_ids=()):
    meta = {**meta, "background": canvas.background.name, "template": k}
    return Sample(task=task, instruction=text, inputs=[Picture(before, "source")], outputs=[Picture(after, "target")],
                  regions=regions, meta=meta, source_ids=canvas.source_ids() + list(extra_ids),
                  generator=f"datagen.collage.edit@{VERSION}")


def make_add(rng, spec, pack) -> Sample:
    size = pack.size
    background = scene.blank(rng, size) if spec.add_background == "blank" else scene.any_background(rng, pack)
    canvas = scene.populate(rng, pack, background, _distractors(rng, spec))
    cut = scene.pick_cutout(rng, pack, canvas.names(), canvas.background.origin)
    where = list(grid.CELLS)[int(rng.integers(len(grid.CELLS)))]
    obj = scene.place(rng, canvas, cut, scene.object_px(rng, size, *EDIT_SIZE), area=grid.cell_area(where, size))
    before = canvas.render()
    after = before.copy()
    compose.blend(after, obj.patch, obj.x, obj.y)
    mask = obj.mask(size)
    scene.visible_enough(before, after, mask)
    canvas.objects.append(obj)
    text, k = instructions.say(rng, "edit.add", obj=palette.article(obj.name), where=grid.PHRASES[where])
    meta = {"object": obj.name, "position": where, "box_px": list(obj.box),
            "others": [o.name for o in canvas.objects[:-1]]}
    return _sample("edit.add", text, k, before, after, [Region("added", "output", 0, mask)], meta, canvas)


def make_remove(rng, spec, pack) -> Sample:
    size = pack.size
    canvas = scene.populate(rng, pack, scene.any_background(rng, pack), 1 + _distractors(rng, spec))
    obj = _clear_object(rng, canvas)
    before = canvas.render()
    after = before.copy()
    x0, y0, x1, y1 = obj.box
    after[y0:y1, x0:x1] = canvas.background.pixels[y0:y1, x0:x1]  # boxes never overlap: only bg is under it
    mask = obj.mask(size)
    scene.visible_enough(before, after, mask)
    where = grid.cell_of(*obj.centre, size)
    text, k = instructions.say(rng, "edit.remove", obj=obj.name, where=grid.PHRASES[where])
    meta = {"object": obj.name, "position": where, "box_px": list(obj.box),
            "others": [o.name for o in canvas.objects if o is not obj]}
    return _sample("edit.remove", text, k, before, after, [Region("removed", "input", 0, mask)], meta, canvas)


def make_replace(rng, spec, pack) -> Sample:
    size = pack.size
    canvas = scene.populate(rng, pack, scene.any_background(rng, pack), 1 + _distractors(rng, spec))
    old = _clear_object(rng, canvas)
    cut = scene.pick_cutout(rng, pack, canvas.names(), canvas.background.origin)
    x0, y0, x1, y1 = old.box
    patch = compose.fit(cut.premul, max(x1 - x0, y1 - y0))
    h, w = patch.shape[:2]
    cx, cy = old.centre
    x, y = int(round(cx - w / 2)), int(round(cy - h / 2))
    new_box = (x, y, x + w, y + h)
    m = scene.margin(size)
    if x < m or y < m or x + w > size - m or y + h > size - m or not all(
            compose.boxes_apart(new_box, b, scene.gap(size)) for b in canvas.boxes(skip=old)):
        raise Unlucky("no_room")
    before = canvas.render()
    after = before.copy()
    after[y0:y1, x0:x1] = canvas.background.pixels[y0:y1, x0:x1]
    compose.blend(after, patch, x, y)
    new = old.moved(patch, x, y, cut.name, cut.asset_id)
    old_mask, new_mask = old.mask(size), new.mask(size)
    scene.visible_enough(before, after, old_mask | new_mask)
    where = grid.cell_of(*old.centre, size)
    text, k = instructions.say(rng, "edit.replace", obj=old.name, new=palette.article(new.name),
                               where=grid.PHRASES[where])
    meta = {"object": old.name, "replacement": new.name, "position": where, "box_px": list(old.box),
            "new_box_px": list(new.box), "others": [o.name for o in canvas.objects if o is not old]}
    regions = [Region("replaced", "input", 0, old_mask), Region("replacement", "output", 0, new_mask)]
    return _sample("edit.replace", text, k, before, after, regions, meta, canvas, [new.asset_id])
