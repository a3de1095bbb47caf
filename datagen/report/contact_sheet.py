"""Contact sheets: one row per sample, inputs -> outputs, labelled with task and instruction.

The demo writes them as PNGs for people to look at; the dataset card embeds a small JPEG
version. Reviewers catch wrong pairs here that no test would.
"""

from __future__ import annotations

import textwrap
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from datagen.images import to_rgb
from datagen.schema import Sample

INPUT_BORDER = (60, 110, 220)
OUTPUT_BORDER = (40, 170, 80)


@lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        import matplotlib

        path = f"{matplotlib.get_data_path()}/fonts/ttf/DejaVuSans.ttf"
        return ImageFont.truetype(path, size)
    except (ImportError, OSError):
        return ImageFont.load_default()


def _tile(pixels: np.ndarray, tile: int, border: tuple[int, int, int]) -> np.ndarray:
    img = to_rgb(pixels)
    h, w = img.shape[:2]
    s = (tile - 4) / max(h, w)
    img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    out = np.full((tile, tile, 3), 245, np.uint8)
    out[:2, :], out[-2:, :], out[:, :2], out[:, -2:] = border, border, border, border
    y0, x0 = (tile - img.shape[0]) // 2, (tile - img.shape[1]) // 2
    out[y0:y0 + img.shape[0], x0:x0 + img.shape[1]] = img
    return out


def _arrow(tile: int) -> np.ndarray:
    a = np.full((tile, tile // 3, 3), 255, np.uint8)
    m, w = tile // 2, tile // 3
    cv2.arrowedLine(a, (4, m), (w - 4, m), (90, 90, 90), 2, tipLength=0.4)
    return a


def sample_strip(sample: Sample, tile: int = 128, max_images: int = 6) -> np.ndarray:
    """Tiles of one sample: inputs (blue frame) -> outputs (green frame); a sample without
    inputs (text-to-image) shows its outputs alone, with no arrow from nothing."""
    parts = [_tile(p.pixels, tile, INPUT_BORDER) for p in sample.inputs[:max_images]]
    if parts:
        parts.append(_arrow(tile))
    parts += [_tile(p.pixels, tile, OUTPUT_BORDER) for p in sample.outputs[:max_images]]
    return np.concatenate(parts, axis=1)


def _label(text: str, width: int, label_px: int) -> np.ndarray:
    chars = max(20, int(width / (label_px * 0.55)))
    lines = textwrap.wrap(text, chars)[:3] or [""]
    band = Image.new("RGB", (width, (label_px + 4) * len(lines) + 6), (255, 255, 255))
    draw = ImageDraw.Draw(band)
    for i, line in enumerate(lines):
        draw.text((4, 3 + i * (label_px + 4)), line, fill=(20, 20, 20), font=_font(label_px))
    return np.asarray(band)


def render(samples: list[Sample], tile: int = 128, width: int | None = None, label_px: int = 13,
           captions: list[str] | None = None, min_tiles: int = 6) -> np.ndarray:
    """A sheet with one row per sample, its label under it: `task | instruction`, or the
    caller's `captions` (one per sample). At least `min_tiles` tiles wide, room for the label."""
    strips = [sample_strip(s, tile) for s in samples]
    width = width or max([s.shape[1] for s in strips] + [min_tiles * tile])
    captions = captions or [f"{s.task}  |  {s.instruction}" for s in samples]
    rows = []
    for caption, strip in zip(captions, strips):
        row = np.full((strip.shape[0], width, 3), 255, np.uint8)
        row[:, : min(width, strip.shape[1])] = strip[:, :width]
        rows.append(np.concatenate([row, _label(caption, width, label_px), np.full((8, width, 3), 255, np.uint8)]))
    if not rows:
        return np.full((tile, width, 3), 255, np.uint8)
    return np.concatenate(rows, axis=0)


def save_png(sheet: np.ndarray, path: str) -> None:
    Image.fromarray(sheet).save(path, optimize=False)


def to_jpeg(sheet: np.ndarray, quality: int = 80) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
