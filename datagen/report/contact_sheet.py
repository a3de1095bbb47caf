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


def tile(pixels: np.ndarray, tile: int, border: tuple[int, int, int], *, pixelated: bool = False) -> np.ndarray:
    """A square tile with a coloured frame, the image centred at its aspect ratio. `pixelated`:
    small images are enlarged with visible pixels (a 32 px training sample stays honest)."""
    img = to_rgb(pixels)
    h, w = img.shape[:2]
    s = (tile - 4) / max(h, w)
    interpolation = cv2.INTER_NEAREST if pixelated and s > 1 else cv2.INTER_AREA
    img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=interpolation)
    out = np.full((tile, tile, 3), 245, np.uint8)
    out[:2, :], out[-2:, :], out[:, :2], out[:, -2:] = border, border, border, border
    y0, x0 = (tile - img.shape[0]) // 2, (tile - img.shape[1]) // 2
    out[y0:y0 + img.shape[0], x0:x0 + img.shape[1]] = img
    return out


_tile = tile


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


def _centred_text(text: str, width: int, height: int, px: int, colour=(20, 20, 20), fill=255) -> np.ndarray:
    band = Image.new("RGB", (width, height), (fill, fill, fill))
    draw = ImageDraw.Draw(band)
    font = _font(px)
    while len(text) > 1 and draw.textlength(text, font=font) > width - 6:  # a column title never spills over
        text = text[:-2] + "…"
    draw.text(((width - draw.textlength(text, font=font)) / 2, (height - px) / 2 - 1), text, fill=colour, font=font)
    return np.asarray(band)


def column_grid(cells: list[list[np.ndarray | None]], headers: list[str], captions: list[str],
                borders: list[tuple[int, int, int]], tile_px: int = 112, label_px: int = 12,
                pixelated: bool = True) -> np.ndarray:
    """Fixed columns: a title band (`headers`), then one row of `cells` per sample (None: an empty
    cell, so a column never shifts), its caption under it. `borders` colour each column's frames."""
    n = len(headers)
    if any(len(row) != n for row in cells) or len(borders) != n or len(captions) != len(cells):
        raise ValueError("column_grid: every row needs one cell per header, and one caption")
    gap = 6
    width = n * tile_px + (n - 1) * gap
    spacer = np.full((tile_px, gap, 3), 255, np.uint8)
    empty = np.full((tile_px, tile_px, 3), 250, np.uint8)
    empty[:, [0, -1]] = empty[[0, -1], :] = 225
    empty = np.minimum(empty, _centred_text("none", tile_px, tile_px, label_px, (160, 160, 160), 250))
    head = [_centred_text(h, tile_px, label_px + 10, label_px) for h in headers]
    parts = [np.concatenate([x for i, h in enumerate(head) for x in ([h] if i == 0 else
                             [np.full((label_px + 10, gap, 3), 255, np.uint8), h])], axis=1)]
    for row, caption in zip(cells, captions):
        tiles = [empty if c is None else tile(c, tile_px, b, pixelated=pixelated) for c, b in zip(row, borders)]
        strip = np.concatenate([x for i, t in enumerate(tiles) for x in ([t] if i == 0 else [spacer, t])], axis=1)
        rule = np.full((1, width, 3), 215, np.uint8)
        parts += [np.full((4, width, 3), 255, np.uint8), strip, _label(caption, width, label_px), rule]
    return np.concatenate(parts, axis=0)


def save_png(sheet: np.ndarray, path: str) -> None:
    Image.fromarray(sheet).save(path, optimize=False)


def to_jpeg(sheet: np.ndarray, quality: int = 80) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
