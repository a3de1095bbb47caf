"""Built-in looks: classical stylisations in integer arithmetic, named the way prompts name styles.

The `classical` backend of the style product renders a target as `LOOKS[name](content)` and its
style reference as the same look on another photo, so "redraw <image 1> in the style of
<image 2>" is true by construction and needs no weights. Every look is integer numpy (box
sums, shifts, lookup tables): the same bytes on any CPU.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

VERSION = 1


def grey(img: np.ndarray) -> np.ndarray:
    """BT.601 luma in integers: (77 R + 150 G + 29 B + 128) >> 8."""
    rgb = img[:, :, :3].astype(np.uint32)
    return ((77 * rgb[:, :, 0] + 150 * rgb[:, :, 1] + 29 * rgb[:, :, 2] + 128) >> 8).astype(np.uint8)


def box_blur(channel: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window (edges replicated), from integral sums: exact integers."""
    k = 2 * radius + 1
    padded = np.pad(channel.astype(np.int64), radius, mode="edge")
    s = np.pad(padded.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    h, w = channel.shape
    total = s[k:k + h, k:k + w] - s[:h, k:k + w] - s[k:k + h, :w] + s[:h, :w]
    return ((total + k * k // 2) // (k * k)).astype(np.uint8)


def edges(channel: np.ndarray) -> np.ndarray:
    """|dx| + |dy| of central differences (int32), 0 on the border."""
    c = channel.astype(np.int32)
    out = np.zeros_like(c)
    out[1:-1, 1:-1] = np.abs(c[1:-1, 2:] - c[1:-1, :-2]) + np.abs(c[2:, 1:-1] - c[:-2, 1:-1])
    return out


def _rgb(channel: np.ndarray) -> np.ndarray:
    return np.repeat(channel[:, :, None], 3, axis=2)


def pencil(img: np.ndarray) -> np.ndarray:
    """Colour dodge of the grey picture by its blurred negative: graphite lines on paper."""
    g = grey(img).astype(np.int32)
    blurred = box_blur((255 - g).astype(np.uint8), max(1, img.shape[0] // 96)).astype(np.int32)
    return _rgb(np.minimum(255, g * 255 // np.maximum(1, 255 - blurred)).astype(np.uint8))


def comic(img: np.ndarray) -> np.ndarray:
    """Four flat levels per channel and black outlines where the picture has edges."""
    smooth = np.dstack([box_blur(img[:, :, c], 1) for c in range(3)])
    flat = (smooth // 64) * 85
    ink = edges(box_blur(grey(img), 1)) > 48
    flat[ink] = 0
    return flat.astype(np.uint8)


def sepia(img: np.ndarray) -> np.ndarray:
    """The classic sepia matrix in integers (per mille), clipped."""
    rgb = img[:, :, :3].astype(np.int32)
    m = np.array([[393, 769, 189], [349, 686, 168], [272, 534, 131]], np.int32)
    out = (rgb @ m.T + 500) // 1000
    return np.minimum(out, 255).astype(np.uint8)


def pixel_art(img: np.ndarray) -> np.ndarray:
    """Blocks of 1/32 of the side, each its mean colour, quantised to 8 levels per channel."""
    h, w = img.shape[:2]
    k = max(2, min(h, w) // 32)
    hh, ww = h - h % k, w - w % k
    blocks = img[:hh, :ww, :3].astype(np.int32).reshape(hh // k, k, ww // k, k, 3).sum(axis=(1, 3))
    mean = (blocks + k * k // 2) // (k * k)
    quant = ((mean // 32) * 32 + 16).astype(np.uint8)
    out = np.repeat(np.repeat(quant, k, axis=0), k, axis=1)
    return np.pad(out, ((0, h - hh), (0, w - ww), (0, 0)), mode="edge")


def _duotone_lut(dark, light) -> np.ndarray:
    t = np.arange(256, dtype=np.int32)[:, None]
    d, li = np.asarray(dark, np.int32), np.asarray(light, np.int32)
    return ((d * (255 - t) + li * t + 127) // 255).astype(np.uint8)


POP_LUT = _duotone_lut((30, 20, 110), (255, 90, 170))


def pop_art(img: np.ndarray) -> np.ndarray:
    """Grey in four steps mapped to a deep-blue-to-pink duotone."""
    steps = (grey(img) // 64).astype(np.int32) * 85
    return POP_LUT[steps]


def blueprint(img: np.ndarray) -> np.ndarray:
    """White lines where the picture has edges, on blueprint blue."""
    ink = edges(box_blur(grey(img), 1))
    level = np.minimum(255, ink * 3).astype(np.int32)
    base = np.array([20, 60, 140], np.int32)
    out = base + ((255 - base) * level[:, :, None] + 127) // 255
    return out.astype(np.uint8)


# name -> (render, words a prompt uses for it)
LOOKS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], str]] = {
    "pencil": (pencil, "a pencil sketch"),
    "comic": (comic, "a comic drawing with flat colours and black outlines"),
    "sepia": (sepia, "a sepia-toned old photograph"),
    "pixel_art": (pixel_art, "pixel art"),
    "pop_art": (pop_art, "a two-tone pop-art print in blue and pink"),
    "blueprint": (blueprint, "a blueprint with white lines on blue"),
}


def render(name: str, img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(LOOKS[name][0](img[:, :, :3]))


def words(name: str) -> str:
    return LOOKS[name][1]
