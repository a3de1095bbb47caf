"""Subject-driven tasks whose references are not copies of the target (MIGE, AnyStory, DreamO).

- edit.subject / edit.subjects (MIGE, instruction-based subject-driven editing): inputs are a
  scene and 1 (or 2-3) subject references; the output is the scene with each subject inserted
  where the instruction says. Only the inserted subjects' pixels change.
- ref.canvas (MIGE, subject generation as editing a blank canvas): inputs are a blank canvas
  and 1-3 references; the output is a new composition of the subjects on a named background.
  Without references this would be plain text-to-image (t2i.*), which has no canvas input.
- ref.subject_varied / ref.subjects_varied (AnyStory, DreamO): 1 (or 2-3) references -> a new
  composition, like ref.subject but with references that differ from the target.

Every reference comes from `varied_ref.build`: mirrored, rotated, rescaled, relit and
zero-padded against its target. Regions: "subject:k" on its reference (input side) and on
the output, both exact (alpha > 0 of what was drawn).
"""

from __future__ import annotations

import numpy as np

from datagen.collage import grid, instructions, palette, scene, varied_ref
from datagen.schema import Picture, Region, Sample

VERSION = 1
SUBJECT_SIZE = (0.2, 0.3)  # target object long side, share of the canvas
CANVAS_RGB = (255, 255, 255)


def _cells(rng, n: int) -> list[str]:
    """n distinct named cells: two subjects never share a position word."""
    names = list(grid.CELLS)
    return [names[int(i)] for i in rng.choice(len(names), size=n, replace=False)]


def _subjects(rng, pack, canvas: scene.Scene, n: int, first_input: int):
    """Place n new distinct-named subjects on `canvas` at distinct named cells, each with its
    varied reference (input image first_input + k). Returns (objects, cells, refs, regions)."""
    size = canvas.size
    objects, cells, refs, regions = [], [], [], []
    for k, where in enumerate(_cells(rng, n)):
        cut = scene.pick_cutout(rng, pack, canvas.names(), canvas.background.origin)
        obj, to_canvas = scene.place_tracked(rng, canvas, cut, scene.object_px(rng, size, *SUBJECT_SIZE),
                                             area=grid.cell_area(where, size))
        canvas.objects.append(obj)
        ref = varied_ref.build(rng, cut, to_canvas, size)
        objects.append(obj)
        cells.append(where)
        refs.append(ref)
        regions.append(Region(f"subject:{k}", "input", first_input + k, ref.mask))
    for k, obj in enumerate(objects):
        regions.append(Region(f"subject:{k}", "output", 0, obj.mask(size)))
    return objects, cells, refs, regions


def _words(objects, cells, first_input: int) -> dict[str, str]:
    return {
        "subjects": instructions.listing([f"the {o.name} from <image {first_input + 1 + k}>"
                                          for k, o in enumerate(objects)]),
        "placement": instructions.listing([f"the {o.name} {grid.PHRASES[c]}" for o, c in zip(objects, cells)]),
        "refs": instructions.listing([f"<image {first_input + 1 + k}>" for k in range(len(objects))]),
    }


def _meta(objects, cells, refs, first_input: int, canvas: scene.Scene) -> dict:
    everything = instructions.listing([palette.article(o.name) for o in canvas.objects])
    return {
        # What the output shows, for products that need a caption of it (conditions).
        "caption": f"{everything} on {palette.article(canvas.background.name)}",
        "subjects": [o.name for o in objects],
        "positions": list(cells),
        "boxes_px": [list(o.box) for o in objects],
        "references": [{"input": first_input + k, **r.meta} for k, r in enumerate(refs)],
        "background": canvas.background.name,
    }


def _sample(task, text, k, inputs, target, regions, meta, source_ids) -> Sample:
    return Sample(task=task, instruction=text[0].upper() + text[1:], inputs=inputs,
                  outputs=[Picture(target, "target")], regions=regions, meta={**meta, "template": k},
                  source_ids=source_ids, generator=f"datagen.collage.subjects@{VERSION}")


# --------------------------------------------------------------------------- edit.subject(s)
def _edit(task: str, n: int, rng, spec, pack) -> Sample:
    distractors = int(rng.integers(0, max(1, spec.max_objects - n + 1)))
    canvas = scene.populate(rng, pack, scene.any_background(rng, pack), distractors)
    others = [o.name for o in canvas.objects]
    before = canvas.render()
    objects, cells, refs, regions = _subjects(rng, pack, canvas, n, first_input=1)
    after = canvas.render()
    for obj in objects:
        scene.visible_enough(before, after, obj.mask(canvas.size))
    words = _words(objects, cells, first_input=1)
    if n == 1:
        words |= {"obj": objects[0].name, "where": grid.PHRASES[cells[0]]}
    text, k = instructions.say(rng, task, **words)
    meta = {**_meta(objects, cells, refs, 1, canvas), "others": others}
    inputs = [Picture(before, "source")] + [Picture(r.image, "reference") for r in refs]
    return _sample(task, text, k, inputs, after, regions, meta, canvas.source_ids())


def make_edit_subject(rng, spec, pack) -> Sample:
    return _edit("edit.subject", 1, rng, spec, pack)


def make_edit_subjects(rng, spec, pack) -> Sample:
    return _edit("edit.subjects", int(rng.integers(2, min(3, max(2, spec.max_objects)) + 1)), rng, spec, pack)


# --------------------------------------------------------------------------- compositions
def _compose(task: str, n: int, rng, pack, with_canvas: bool) -> Sample:
    canvas = scene.Scene(scene.any_background(rng, pack))
    first = 1 if with_canvas else 0
    objects, cells, refs, regions = _subjects(rng, pack, canvas, n, first_input=first)
    target = canvas.render()
    text, k = instructions.say(rng, task, background=palette.article(canvas.background.name),
                               **_words(objects, cells, first))
    meta = _meta(objects, cells, refs, first, canvas)
    inputs = [Picture(r.image, "reference") for r in refs]
    if with_canvas:
        size = canvas.size
        blank = np.broadcast_to(np.array([CANVAS_RGB] * size, np.uint8), (size, size, 3)).copy()
        inputs.insert(0, Picture(blank, "canvas"))
        meta["canvas_rgb"] = list(CANVAS_RGB)
    return _sample(task, text, k, inputs, target, regions, meta, canvas.source_ids())


def _count(rng, spec, lo: int, hi: int) -> int:
    return int(rng.integers(lo, max(lo, min(hi, spec.max_objects)) + 1))


def make_canvas(rng, spec, pack) -> Sample:
    return _compose("ref.canvas", _count(rng, spec, 1, 3), rng, pack, with_canvas=True)


def make_varied(rng, spec, pack) -> Sample:
    return _compose("ref.subject_varied", 1, rng, pack, with_canvas=False)


def make_varied_multi(rng, spec, pack) -> Sample:
    return _compose("ref.subjects_varied", _count(rng, spec, 2, 3), rng, pack, with_canvas=False)
