"""Procedurally drawn stickers: flat shapes with a dark outline, exact alpha, good names.

Each sticker is drawn at twice its final size with OpenCV and halved with area averaging,
which gives clean anti-aliased edges. The outline is the body grown by a few pixels in a
darker shade, so a sticker reads on any background, light or dark.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from datagen.portable import cos, sin

SIDE = 384  # final sticker canvas (px); drawn at 2x
_N = 2 * SIDE


def _pts(coords) -> np.ndarray:
    """Unit coordinates in [-1, 1] (y down) -> int32 pixel polygon on the 2x canvas."""
    xy = (np.asarray(coords, np.float64) * 0.44 + 0.5) * _N
    return np.round(xy).astype(np.int32)


def _px(v: float) -> int:
    return int(round(v * 0.44 * _N))


def _poly(coords) -> np.ndarray:
    m = np.zeros((_N, _N), np.uint8)
    cv2.fillPoly(m, [_pts(coords)], 255)
    return m


def _disc(cx, cy, r) -> np.ndarray:
    m = np.zeros((_N, _N), np.uint8)
    cv2.circle(m, tuple(int(v) for v in _pts([(cx, cy)])[0]), _px(r), 255, -1)
    return m


def _ellipse(cx, cy, rx, ry, angle=0.0) -> np.ndarray:
    m = np.zeros((_N, _N), np.uint8)
    cv2.ellipse(m, tuple(int(v) for v in _pts([(cx, cy)])[0]), (_px(rx), _px(ry)), angle, 0, 360, 255, -1)
    return m


def _star(points=5, inner=0.45):
    t = np.arange(2 * points) * np.pi / points - np.pi / 2
    r = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return _poly(np.stack([r * cos(t), r * sin(t) + 0.08], 1))


def _heart():
    t = np.linspace(0, 2 * np.pi, 200)
    x = 16 * sin(t) ** 3
    y = -(13 * cos(t) - 5 * cos(2 * t) - 2 * cos(3 * t) - cos(4 * t))
    return _poly(np.stack([x / 17.0, (y + 2.5) / 17.0], 1))


def _regular(n, rot=0.0, r=1.0):
    t = np.arange(n) * 2 * np.pi / n + rot
    return _poly(np.stack([r * cos(t), r * sin(t)], 1))


def _union(*masks):
    out = masks[0].copy()
    for m in masks[1:]:
        np.maximum(out, m, out=out)
    return out


def _minus(a, b):
    return np.where(b > 0, 0, a).astype(np.uint8)


def _face(happy: bool):
    def details(rgb):
        ink = (40, 30, 20)
        for ex in (-0.33, 0.33):
            cv2.ellipse(rgb, tuple(int(v) for v in _pts([(ex, -0.25)])[0]), (_px(0.09), _px(0.16)), 0, 0, 360, ink, -1)
        c = tuple(int(v) for v in _pts([(0, 0.05 if happy else 0.62)])[0])
        start, end = (20, 160) if happy else (200, 340)
        cv2.ellipse(rgb, c, (_px(0.5), _px(0.42 if happy else 0.3)), 0, start, end, ink, _px(0.09))

    return details


def _lines(segments, colour, width):
    def details(rgb):
        for a, b in segments:
            p, q = _pts([a, b])
            cv2.line(rgb, tuple(int(v) for v in p), tuple(int(v) for v in q), colour, _px(width))

    return details


def _dots(centres, r, colour):
    def details(rgb):
        for c in centres:
            cv2.circle(rgb, tuple(int(v) for v in _pts([c])[0]), _px(r), colour, -1)

    return details


def _flat(colour) -> np.ndarray:
    img = np.empty((_N, _N, 3), np.uint8)
    cv2.rectangle(img, (0, 0), (_N, _N), tuple(int(v) for v in colour), -1)  # much faster than np.full
    return img


def render(parts, details=None, outline=0.045) -> np.ndarray:
    """Straight-alpha RGBA sticker from [(mask, rgb), ...] drawn in order, outlined in a darker shade."""
    body = _union(*[m for m, _ in parts])
    # Grow the body by the outline width: a distance transform is a round dilation at any radius.
    dist = cv2.distanceTransform(np.where(body > 0, 0, 255).astype(np.uint8), cv2.DIST_L2, 5)
    alpha = np.where(dist <= _px(outline), 255, 0).astype(np.uint8)
    dark = tuple(int(v * 0.4) for v in parts[0][1])
    rgb = _flat(dark)
    for mask, colour in parts:
        cv2.copyTo(_flat(colour), mask, rgb)
    if details is not None:
        details(rgb)
    rgba = cv2.merge([*cv2.split(rgb), alpha])
    return cv2.resize(rgba, (SIDE, SIDE), interpolation=cv2.INTER_AREA)


def _catalogue():
    """name -> (parts, details). Colours are the palette's, so 'red' means palette red."""
    from datagen.collage.palette import NAMED as C

    white = (245, 245, 245)
    trunk, leaf = C["brown"], C["green"]
    cap = _minus(_ellipse(0, -0.1, 0.95, 0.75), _poly([(-1, 0.05), (1, 0.05), (1, 1), (-1, 1)]))
    return {
        "yellow star": ([(_star(), C["yellow"])], None),
        "red star": ([(_star(), C["red"])], None),
        "red heart": ([(_heart(), C["red"])], None),
        "pink heart": ([(_heart(), C["pink"])], None),
        "blue arrow": ([(_poly([(-1, -0.25), (0.15, -0.25), (0.15, -0.65), (1, 0), (0.15, 0.65),
                                (0.15, 0.25), (-1, 0.25)]), C["blue"])], None),
        "green arrow": ([(_poly([(-0.25, 1), (-0.25, -0.15), (-0.65, -0.15), (0, -1), (0.65, -0.15),
                                 (0.25, -0.15), (0.25, 1)]), C["green"])], None),
        "orange ball": ([(_disc(0, 0, 0.95), C["orange"])],
                        _lines([((-0.95, 0), (0.95, 0)), ((0, -0.95), (0, 0.95))], (150, 70, 10), 0.05)),
        "smiley face": ([(_disc(0, 0, 0.95), C["yellow"])], _face(True)),
        "sad face": ([(_disc(0, 0, 0.95), C["cyan"])], _face(False)),
        "crescent moon": ([(_minus(_disc(0, 0, 0.9), _disc(0.42, -0.22, 0.72)), C["yellow"])], None),
        "sun": ([(_union(_star(12, 0.7), _disc(0, 0.08, 0.6)), C["orange"]), (_disc(0, 0.08, 0.55), C["yellow"])],
                None),
        "cloud": ([(_union(_disc(-0.5, 0.15, 0.42), _disc(0.05, -0.15, 0.55), _disc(0.55, 0.15, 0.4),
                           _poly([(-0.5, 0.15), (0.55, 0.15), (0.55, 0.57), (-0.5, 0.57)])), white)], None),
        "lightning bolt": ([(_poly([(0.15, -1), (-0.6, 0.12), (-0.05, 0.12), (-0.25, 1), (0.6, -0.2),
                                    (0.05, -0.2), (0.35, -1)]), C["yellow"])], None),
        "diamond": ([(_poly([(-0.95, -0.3), (-0.5, -0.8), (0.5, -0.8), (0.95, -0.3), (0, 0.95)]), C["cyan"])],
                         _lines([((-0.95, -0.3), (0.95, -0.3)), ((-0.2, -0.8), (-0.4, -0.3)),
                                 ((0.2, -0.8), (0.4, -0.3)), ((-0.4, -0.3), (0, 0.95)), ((0.4, -0.3), (0, 0.95))],
                                (20, 110, 140), 0.025)),
        "purple hexagon": ([(_regular(6, 0.0), C["purple"])], None),
        "green triangle": ([(_poly([(0, -0.95), (1, 0.8), (-1, 0.8)]), C["green"])], None),
        "red plus sign": ([(_union(_poly([(-0.3, -1), (0.3, -1), (0.3, 1), (-0.3, 1)]),
                                   _poly([(-1, -0.3), (1, -0.3), (1, 0.3), (-1, 0.3)])), C["red"])], None),
        "check mark": ([(_poly([(-1, 0.05), (-0.65, -0.3), (-0.3, 0.1), (0.65, -0.9), (1, -0.55), (-0.3, 0.8)]),
                         C["green"])], None),
        "pink flower": ([(_union(*[_disc(0.55 * math.cos(a), 0.55 * math.sin(a), 0.42)
                                   for a in (k * math.pi / 3 for k in range(6))]), C["pink"]),
                         (_disc(0, 0, 0.36), C["yellow"])], None),
        "green leaf": ([(_ellipse(0, 0, 1.0, 0.5, -35), C["green"])],
                       _lines([((-0.8, 0.55), (0.8, -0.55))], (20, 90, 40), 0.04)),
        "water drop": ([(_union(_disc(0, 0.35, 0.62), _poly([(0, -1), (0.56, 0.1), (-0.56, 0.1)])), C["blue"])],
                       _dots([(-0.25, 0.3)], 0.12, (170, 200, 250))),
        "house": ([(_poly([(-0.75, -0.05), (0.75, -0.05), (0.75, 0.95), (-0.75, 0.95)]), C["yellow"]),
                   (_poly([(-1, 0.0), (0, -0.95), (1, 0.0)]), C["red"]),
                   (_poly([(-0.18, 0.4), (0.18, 0.4), (0.18, 0.95), (-0.18, 0.95)]), trunk)], None),
        "tree": ([(_poly([(-0.16, 0.3), (0.16, 0.3), (0.16, 1), (-0.16, 1)]), trunk),
                  (_union(_disc(0, -0.35, 0.6), _disc(-0.4, 0.05, 0.45), _disc(0.4, 0.05, 0.45)), leaf)], None),
        "goldfish": ([(_union(_ellipse(-0.15, 0, 0.7, 0.45), _poly([(0.4, 0), (1, -0.55), (1, 0.55)])), C["orange"])],
                     _dots([(-0.5, -0.1)], 0.08, (30, 30, 30))),
        "red balloon": ([(_ellipse(0, -0.2, 0.62, 0.78), C["red"]),
                         (_poly([(-0.02, 0.55), (0.02, 0.55), (0.05, 1), (-0.05, 1)]), (90, 90, 90))], None),
        "mushroom": ([(cap, C["red"]), (_poly([(-0.3, 0.05), (0.3, 0.05), (0.35, 0.95), (-0.35, 0.95)]), white)],
                     _dots([(-0.5, -0.3), (0.1, -0.55), (0.5, -0.2)], 0.13, white)),
        "speech bubble": ([(_union(_ellipse(0, -0.15, 1.0, 0.7), _poly([(-0.5, 0.3), (-0.2, 0.45), (-0.75, 0.95)])),
                            white)], _dots([(-0.45, -0.15), (0, -0.15), (0.45, -0.15)], 0.1, (60, 60, 60))),
        "donut": ([(_minus(_disc(0, 0, 0.95), _disc(0, 0, 0.35)), (215, 160, 90)),
                   (_minus(_disc(0, -0.04, 0.82), _disc(0, 0, 0.44)), C["pink"])],
                  _dots([(-0.55, -0.2), (0.2, -0.62), (0.6, 0.1), (-0.1, 0.6), (0.5, 0.5), (-0.6, 0.35)], 0.06,
                        C["blue"])),
        "music note": ([(_union(_ellipse(-0.35, 0.65, 0.38, 0.28, -20), _poly([(-0.02, 0.65), (0.08, 0.65),
                                                                                (0.08, -0.95), (-0.02, -0.95)]),
                                _poly([(0.08, -0.95), (0.65, -0.55), (0.65, -0.3), (0.08, -0.65)])), C["black"])],
                       None),
    }


def stickers() -> list[tuple[str, np.ndarray]]:
    """(name, straight-alpha RGBA uint8) for every sticker, in a fixed order."""
    return [(name, render(parts, details)) for name, (parts, details) in _catalogue().items()]
