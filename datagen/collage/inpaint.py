"""inpaint / outpaint: the full composite is the target; the input hides or crops part of it.

inpaint: input 1 is the picture with a grey hole (scribble, block or edge band), input 2 the
hole as a lossless 0/255 mask; a caption is added with probability `spec.caption_p`.
outpaint: input 1 is a crop of the picture; the instruction names the direction and how
much of the result the original covers.
"""

from __future__ import annotations

import cv2
import numpy as np

from datagen.collage import instructions, palette, scene
from datagen.collage.compose import Unlucky
from datagen.schema import Picture, Region, Sample

VERSION = 1
HOLE_GREY = (128, 128, 128)
HOLE_SHARE = (0.04, 0.5)  # hole area as a share of the canvas
HOLE_KINDS = ("scribble", "block", "edge")
DIRECTIONS = {
    "right": "to the right", "left": "to the left", "up": "upward", "down": "downward",
    "horizontal": "to the left and right", "vertical": "up and down", "all": "on all sides",
}


def hole_mask(rng, kind: str, size: int) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    if kind == "scribble":
        for _ in range(int(rng.integers(1, 4))):
            start = rng.uniform(0.1, 0.9, 2) * size
            steps = rng.normal(0.0, 0.18 * size, (int(rng.integers(3, 7)), 2))
            pts = np.clip(start + np.cumsum(steps, axis=0), 0, size - 1)
            pts = np.round(np.vstack([start, pts])).astype(np.int32)
            cv2.polylines(mask, [pts], False, 255, max(2, int(size * rng.uniform(0.04, 0.09))))
    elif kind == "block":
        for _ in range(int(rng.integers(1, 3))):
            w, h = (rng.uniform(0.15, 0.45, 2) * size).astype(int)
            x, y = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
            mask[y : y + h, x : x + w] = 255
    else:  # a band along one or two borders of the picture
        for side in rng.choice(4, int(rng.integers(1, 3)), replace=False):
            depth = int(size * rng.uniform(0.12, 0.3))
            band = (slice(None), slice(0, depth)), (slice(None), slice(size - depth, size)), \
                (slice(0, depth), slice(None)), (slice(size - depth, size), slice(None))
            mask[band[int(side)]] = 255
    return mask


def _caption(canvas: scene.Scene) -> str:
    things = instructions.listing([palette.article(o.name) for o in canvas.objects])
    bg = palette.article(canvas.background.name)
    return f"{things} on {bg}" if things else bg


def make_inpaint(rng, spec, pack) -> Sample:
    size = pack.size
    canvas = scene.populate(rng, pack, scene.any_background(rng, pack), int(rng.integers(0, spec.max_objects + 1)))
    full = canvas.render()
    kind = HOLE_KINDS[int(rng.integers(len(HOLE_KINDS)))]
    mask = hole_mask(rng, kind, size)
    share = float(np.count_nonzero(mask)) / mask.size
    if not HOLE_SHARE[0] <= share <= HOLE_SHARE[1]:
        raise Unlucky("hole_size")
    holed = full.copy()
    holed[mask > 0] = HOLE_GREY
    caption = ""
    if rng.random() < spec.caption_p:
        caption = " The full picture shows " + _caption(canvas) + "."
    text, k = instructions.say(rng, "inpaint", caption=caption)
    hole = mask > 0
    meta = {"hole_kind": kind, "hole_share": round(share, 4), "fill_rgb": list(HOLE_GREY),
            "caption": caption.strip(), "objects": [o.name for o in canvas.objects],
            "background": canvas.background.name, "template": k}
    return Sample(task="inpaint", instruction=text, inputs=[Picture(holed, "source"), Picture(mask, "mask")],
                  outputs=[Picture(full, "target")],
                  regions=[Region("hole", "input", 0, hole), Region("hole", "output", 0, hole)],
                  meta=meta, source_ids=canvas.source_ids(), generator=f"datagen.collage.inpaint@{VERSION}")


def make_outpaint(rng, spec, pack) -> Sample:
    size = pack.size
    canvas = scene.populate(rng, pack, scene.any_background(rng, pack), int(rng.integers(1, spec.max_objects + 1)))
    full = canvas.render()
    direction = list(DIRECTIONS)[int(rng.integers(len(DIRECTIONS)))]
    keep = float(rng.uniform(0.5, 0.8))
    span = int(round(keep * size))
    lo = (size - span) // 2
    x0, y0, x1, y1 = 0, 0, size, size
    if direction == "right":
        x1 = span
    elif direction == "left":
        x0 = size - span
    elif direction == "down":
        y1 = span
    elif direction == "up":
        y0 = size - span
    if direction in ("horizontal", "all"):
        x0, x1 = lo, lo + span
    if direction in ("vertical", "all"):
        y0, y1 = lo, lo + span
    crop = np.ascontiguousarray(full[y0:y1, x0:x1])
    wide, tall = round(100 * (x1 - x0) / size), round(100 * (y1 - y0) / size)
    keep_text = {
        "right": f"the original becomes the left {wide}%", "left": f"the original becomes the right {wide}%",
        "down": f"the original becomes the top {tall}%", "up": f"the original becomes the bottom {tall}%",
        "horizontal": f"the original stays in the middle {wide}% of the width",
        "vertical": f"the original stays in the middle {tall}% of the height",
        "all": f"the original stays in the middle, {wide}% of the width and {tall}% of the height",
    }[direction]
    text, k = instructions.say(rng, "outpaint", direction=DIRECTIONS[direction], width=size, height=size,
                               keep=keep_text)
    known = np.zeros((size, size), bool)
    known[y0:y1, x0:x1] = True
    meta = {"direction": direction, "crop_px": [x0, y0, x1, y1], "percent_kept": [wide, tall],
            "objects": [o.name for o in canvas.objects], "background": canvas.background.name, "template": k}
    return Sample(task="outpaint", instruction=text, inputs=[Picture(crop, "source")],
                  outputs=[Picture(full, "target")],
                  regions=[Region("known", "output", 0, known), Region("extension", "output", 0, ~known)],
                  meta=meta, source_ids=canvas.source_ids(), generator=f"datagen.collage.inpaint@{VERSION}")
