"""drag.translate / drag.scale / drag.rotate: an object moves as its handle points say.

Every transform is tracked as one exact affine on canvas coordinates (continuous pixels:
pixel i spans [i, i + 1)), so each handle point's target is where that bit of the object
really went. The hole left behind is the true background, because we composited it.
Points are written as normalised (x, y) and (dx, dy) in the instruction and in meta.
"""

from __future__ import annotations

import cv2
import numpy as np

from datagen.collage import compose, instructions, scene
from datagen.collage.compose import Placed, Unlucky
from datagen.schema import Picture, Region, Sample

VERSION = 1
OBJECT_SIZE = (0.18, 0.3)
MIN_SHIFT = 0.12  # translate: at least this share of the canvas, so the move is obvious
SCALES = ((0.6, 0.8), (1.25, 1.6))
ANGLES = (20.0, 90.0)


def _h(m: np.ndarray) -> np.ndarray:
    return np.vstack([m, [0.0, 0.0, 1.0]])


def _shift(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def _canvas_affine(patch_affine: np.ndarray, old: Placed, new_xy) -> np.ndarray:
    """Canvas (continuous) -> canvas: leave the old patch, apply the patch map, enter the new one.

    Patch maps use OpenCV's pixel-index coordinates (pixel i at i), hence the +-0.5 shifts.
    """
    index_map = _shift(new_xy[0], new_xy[1]) @ _h(patch_affine) @ _shift(-old.x, -old.y)
    return (_shift(0.5, 0.5) @ index_map @ _shift(-0.5, -0.5))[:2]


def _apply(m: np.ndarray, x: float, y: float) -> tuple[float, float]:
    return float(m[0, 0] * x + m[0, 1] * y + m[0, 2]), float(m[1, 0] * x + m[1, 1] * y + m[1, 2])


def _handles(rng, m, old_mask, new_mask, size: int, n: int, centre) -> list[list[float]]:
    """n handle points on the object (2-decimal normalised) with their exact targets."""
    inner = cv2.erode(old_mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    target_ok = cv2.dilate(new_mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    ys, xs = np.nonzero(inner)
    if len(xs) == 0:
        raise Unlucky("object_too_thin")
    radius = float(np.max(np.hypot(xs + 0.5 - centre[0], ys + 0.5 - centre[1])))
    points: list[list[float]] = []
    for _ in range(60):
        i = int(rng.integers(len(xs)))
        px, py = round((xs[i] + 0.5) / size, 2), round((ys[i] + 0.5) / size, 2)
        cx, cy = px * size, py * size
        if not inner[min(int(cy), size - 1), min(int(cx), size - 1)]:
            continue  # rounding to 2 decimals left the object
        if n > 1 and np.hypot(cx - centre[0], cy - centre[1]) < 0.5 * radius:
            continue  # near the centre a scale or rotation barely moves a point
        # Handles on opposite sides of the centre say more about a scale or a rotation.
        if any(np.hypot(cx - p[0] * size, cy - p[1] * size) < 0.4 * radius
               or (n > 1 and (cx - centre[0]) * (p[0] * size - centre[0]) + (cy - centre[1]) * (p[1] * size - centre[1]) > 0)
               for p in points):
            continue
        tx, ty = _apply(m, cx, cy)
        if not (0 <= tx < size and 0 <= ty < size) or not target_ok[int(ty), int(tx)]:
            continue
        points.append([px, py, round(tx / size - px, 4), round(ty / size - py, 4)])
        if len(points) == n:
            return points
    raise Unlucky("no_handle_points")


def _setup(rng, spec, pack):
    size = pack.size
    canvas = scene.populate(rng, pack, scene.any_background(rng, pack), int(rng.integers(0, spec.max_objects)))
    cut = scene.pick_cutout(rng, pack, canvas.names(), canvas.background.origin)
    longest = scene.object_px(rng, size, *OBJECT_SIZE)
    patch, to_patch = compose.resize(cut.premul, longest)
    spot = compose.find_spot(rng, patch.shape[1], patch.shape[0], size, canvas.boxes(),
                             margin=scene.margin(size), gap=scene.gap(size))
    if spot is None:
        raise Unlucky("no_room")
    obj = Placed(cut.name, cut.asset_id, patch, *spot)
    return canvas, obj, (cut, to_patch, longest)


def _finish(task, rng, canvas, obj, new_patch, new_xy, m, n_points, words, extra_meta):
    size = canvas.size
    x, y = new_xy
    h, w = new_patch.shape[:2]
    mg = scene.margin(size)
    if x < mg or y < mg or x + w > size - mg or y + h > size - mg:
        raise Unlucky("leaves_canvas")
    if not all(compose.boxes_apart((x, y, x + w, y + h), b, scene.gap(size)) for b in canvas.boxes()):
        raise Unlucky("hits_other_object")
    before_scene = canvas.render()
    compose.blend(before_scene, obj.patch, obj.x, obj.y)
    after = canvas.render()
    compose.blend(after, new_patch, x, y)
    old_mask, new_mask = obj.mask(size), compose.patch_mask(new_patch, x, y, size)
    scene.visible_enough(before_scene, after, old_mask ^ new_mask)
    points = _handles(rng, m, old_mask, new_mask, size, n_points, obj.centre)
    text, k = instructions.say(rng, task, obj=obj.name, points=instructions.drag_text(points), **words)
    meta = {"object": obj.name, "points": points, "affine": np.round(m, 6).tolist(),
            "box_px": list(obj.box), "new_box_px": [x, y, x + w, y + h],
            "background": canvas.background.name, "others": sorted(canvas.names()), "template": k, **extra_meta}
    regions = [Region("object", "input", 0, old_mask), Region("object", "output", 0, new_mask)]
    return Sample(task=task, instruction=text, inputs=[Picture(before_scene, "source")],
                  outputs=[Picture(after, "target")], regions=regions, meta=meta,
                  source_ids=canvas.source_ids() + [obj.asset_id], generator=f"datagen.collage.drag@{VERSION}")


def make_translate(rng, spec, pack) -> Sample:
    canvas, obj, _ = _setup(rng, spec, pack)
    size = canvas.size
    h, w = obj.patch.shape[:2]
    spot = compose.find_spot(rng, w, h, size, canvas.boxes(), margin=scene.margin(size), gap=scene.gap(size))
    if spot is None:
        raise Unlucky("no_room")
    dx, dy = spot[0] - obj.x, spot[1] - obj.y
    if np.hypot(dx, dy) < MIN_SHIFT * size:
        raise Unlucky("move_too_small")
    m = _canvas_affine(np.array([[1.0, 0, dx], [0, 1.0, dy]]), obj, (obj.x, obj.y))
    horizontal = "to the right" if dx > 0.05 * size else "to the left" if dx < -0.05 * size else ""
    vertical = "down" if dy > 0.05 * size else "up" if dy < -0.05 * size else ""
    way = " and ".join(v for v in (horizontal, vertical) if v)
    return _finish("drag.translate", rng, canvas, obj, obj.patch, spot, m, int(rng.integers(1, 3)),
                   {"way": way}, {"shift_px": [int(dx), int(dy)]})


def make_scale(rng, spec, pack) -> Sample:
    canvas, obj, (cut, to_base, longest) = _setup(rng, spec, pack)
    lo, hi = SCALES[int(rng.integers(len(SCALES)))]
    factor = round(float(rng.uniform(lo, hi)), 2)
    # Resample from the master, not from the small patch: a grown object stays sharp.
    new_patch, to_new = compose.resize(cut.premul, int(round(longest * factor)))
    patch_map = (_h(to_new) @ np.linalg.inv(_h(to_base)))[:2]
    new_xy = _keep_centre(patch_map, obj)
    m = _canvas_affine(patch_map, obj, new_xy)
    # Whole pixels make the real factor differ slightly from the drawn one; say the real one.
    actual = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    words = {"bigger": "bigger" if actual > 1 else "smaller", "factor": f"{actual:.2f}"}
    return _finish("drag.scale", rng, canvas, obj, new_patch, new_xy, m, 2, words, {"scale": round(actual, 4)})


def make_rotate(rng, spec, pack) -> Sample:
    canvas, obj, _ = _setup(rng, spec, pack)
    degrees = int(rng.integers(ANGLES[0], ANGLES[1] + 1)) * (1 if rng.random() < 0.5 else -1)
    new_patch, patch_map = compose.warp(obj.patch, float(degrees), 1.0)
    new_xy = _keep_centre(patch_map, obj)
    m = _canvas_affine(patch_map, obj, new_xy)
    words = {"degrees": abs(degrees), "turn": "counterclockwise" if degrees > 0 else "clockwise"}
    return _finish("drag.rotate", rng, canvas, obj, new_patch, new_xy, m, 2, words, {"angle": degrees})


def _keep_centre(patch_map: np.ndarray, obj: Placed) -> tuple[int, int]:
    """New top-left so the object's box centre stays where it was (to the nearest pixel)."""
    h, w = obj.patch.shape[:2]
    cx, cy = _apply(patch_map, (w - 1) / 2.0, (h - 1) / 2.0)
    return int(round(obj.x + (w - 1) / 2.0 - cx)), int(round(obj.y + (h - 1) / 2.0 - cy))
