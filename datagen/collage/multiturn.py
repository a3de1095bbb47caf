"""edit.multiturn: 2-4 chained edits on one canvas; every intermediate state is an output.

Turn k changes exactly the pixels of its region(s): the edited object's mask on the state
before the turn (named "turn k", on input 0 or output k-2) and on the state after it
("turn k", on output k-1). Objects never overlap, so every turn is local.
"""

from __future__ import annotations

import numpy as np

from datagen.collage import compose, grid, instructions, palette, scene
from datagen.collage.compose import Placed, Unlucky
from datagen.schema import Picture, Region, Sample

VERSION = 1
OPS = ("add", "remove", "replace", "move", "recolour")
OBJECT_SIZE = (0.16, 0.28)
TURN_TRIES = 6  # ops tried per turn before the whole draw starts over
MOVE_PHRASES = {
    "top left": "to the top left corner", "top": "to the top", "top right": "to the top right corner",
    "left": "to the left side", "center": "to the center", "right": "to the right side",
    "bottom left": "to the bottom left corner", "bottom": "to the bottom", "bottom right": "to the bottom right corner",
}


def _turn(rng, op: str, canvas: scene.Scene, pack, locked: list[Placed]):
    """Apply one op to `canvas` (mutating its objects); returns (text, old, new, named cell or None).

    Objects in `locked` were turned black and white: their colour word no longer
    fits, so no later turn refers to them by name.
    """
    size = canvas.size
    if op == "add":
        cut = scene.pick_cutout(rng, pack, canvas.names(), canvas.background.origin)
        where = list(grid.CELLS)[int(rng.integers(len(grid.CELLS)))]
        new = scene.place(rng, canvas, cut, scene.object_px(rng, size, *OBJECT_SIZE), area=grid.cell_area(where, size))
        canvas.objects.append(new)
        return f"add {palette.article(new.name)} {grid.PHRASES[where]}", None, new, where
    free = [o for o in canvas.objects if not any(o is x for x in locked)]
    if not free:
        raise Unlucky("nothing_to_edit")
    old = free[int(rng.integers(len(free)))]
    i = canvas.objects.index(old)
    if op == "remove":
        canvas.objects.pop(i)
        return f"remove the {old.name}", old, None, None
    if op == "recolour":
        new = old.moved(compose.greyscale(old.patch), old.x, old.y)
        canvas.objects[i] = new
        locked.append(new)
        return f"make the {old.name} black and white", old, new, None
    if op == "replace":
        cut = scene.pick_cutout(rng, pack, canvas.names(), canvas.background.origin)
        x0, y0, x1, y1 = old.box
        patch = compose.fit(cut.premul, max(x1 - x0, y1 - y0))
        h, w = patch.shape[:2]
        x, y = int(round(old.centre[0] - w / 2)), int(round(old.centre[1] - h / 2))
        m, g = scene.margin(size), scene.gap(size)
        if x < m or y < m or x + w > size - m or y + h > size - m or not all(
                compose.boxes_apart((x, y, x + w, y + h), b, g) for b in canvas.boxes(skip=old)):
            raise Unlucky("no_room")
        new = old.moved(patch, x, y, cut.name, cut.asset_id)
        canvas.objects[i] = new
        return f"replace the {old.name} with {palette.article(new.name)}", old, new, None
    # move: to a named cell, clear of its own old place so the change is unmistakable
    where = list(grid.CELLS)[int(rng.integers(len(grid.CELLS)))]
    if where == grid.cell_of(*old.centre, size):
        raise Unlucky("already_there")
    h, w = old.patch.shape[:2]
    spot = compose.find_spot(rng, w, h, size, canvas.boxes(), margin=scene.margin(size), gap=scene.gap(size),
                             area=grid.cell_area(where, size))
    if spot is None:
        raise Unlucky("no_room")
    new = old.moved(old.patch, *spot)
    canvas.objects[i] = new
    return f"move the {old.name} {MOVE_PHRASES[where]}", old, new, where


def _attempt(rng, canvas: scene.Scene, pack, current: np.ndarray, locked: list[Placed]):
    size = canvas.size
    op = OPS[int(rng.integers(len(OPS)))]
    text, old, new, where = _turn(rng, op, canvas, pack, locked)
    after = current.copy()
    if old is not None:
        x0, y0, x1, y1 = old.box
        after[y0:y1, x0:x1] = canvas.background.pixels[y0:y1, x0:x1]
    if new is not None:
        compose.blend(after, new.patch, new.x, new.y)
    old_mask = old.mask(size) if old is not None else np.zeros((size, size), bool)
    new_mask = new.mask(size) if new is not None else np.zeros((size, size), bool)
    changed = old_mask ^ new_mask if (old_mask ^ new_mask).any() else old_mask | new_mask
    scene.visible_enough(current, after, changed)
    return op, text, where, old, new, after, (old_mask, new_mask)


def make(rng, spec, pack) -> Sample:
    canvas = scene.populate(rng, pack, scene.any_background(rng, pack), int(rng.integers(1, spec.max_objects + 1)),
                            *OBJECT_SIZE)
    start = canvas.render()
    states, regions, turns, used = [], [], [], set(canvas.source_ids())
    current = start
    n_turns = int(rng.integers(2, max(2, spec.max_turns) + 1))
    start_objects = [o.name for o in canvas.objects]
    locked: list[Placed] = []
    for k in range(1, n_turns + 1):
        for _ in range(TURN_TRIES):
            before_objects = list(canvas.objects)
            try:
                op, text, where, old, new, after, changed = _attempt(rng, canvas, pack, current, locked)
                break
            except Unlucky:
                canvas.objects = before_objects  # an op that does not fit leaves the canvas as it was
        else:
            raise Unlucky("no_turn_fits")
        old_mask, new_mask = changed
        prev_side, prev_index = ("input", 0) if k == 1 else ("output", k - 2)
        if old is not None:
            regions.append(Region(f"turn {k}", prev_side, prev_index, old_mask))
        if new is not None:
            regions.append(Region(f"turn {k}", "output", k - 1, new_mask))
            used.add(new.asset_id)
        turns.append({"turn": k, "op": op, "text": text, "object": (old or new).name, "position": where,
                      "new_object": new.name if new is not None and old is not None and new.name != old.name else None,
                      "box_px": list(old.box) if old is not None else None,
                      "new_box_px": list(new.box) if new is not None else None})
        states.append(after)
        current = after
    listed = " ".join(f"Turn {t['turn']}: {t['text'][0].upper() + t['text'][1:]}." for t in turns)
    text, t = instructions.say(rng, "edit.multiturn", turns=listed, n=instructions.COUNT_WORDS[n_turns])
    meta = {"turns": turns, "start_objects": start_objects, "background": canvas.background.name, "template": t}
    return Sample(task="edit.multiturn", instruction=text, inputs=[Picture(start, "source")],
                  outputs=[Picture(s, "target") for s in states], regions=regions, meta=meta,
                  source_ids=sorted(used), generator=f"datagen.collage.multiturn@{VERSION}")
