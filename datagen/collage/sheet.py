"""A contact sheet of samples: one row per sample, inputs -> outputs, instruction beneath.

For people reviewing a dataset (cards, notebooks, /tmp previews); not used by generation.
"""

from __future__ import annotations

import textwrap

import cv2
import numpy as np

from datagen.schema import Sample

ARROW_W = 28


def _thumb(pixels: np.ndarray, side: int) -> np.ndarray:
    rgb = np.repeat(pixels[:, :, None], 3, axis=2) if pixels.ndim == 2 else pixels[:, :, :3]
    h, w = rgb.shape[:2]
    s = side / max(h, w)
    small = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    tile = np.full((side, side, 3), 255, np.uint8)
    y, x = (side - small.shape[0]) // 2, (side - small.shape[1]) // 2
    tile[y : y + small.shape[0], x : x + small.shape[1]] = small
    cv2.rectangle(tile, (x, y), (x + small.shape[1] - 1, y + small.shape[0] - 1), (200, 200, 200), 1)
    return tile


def _arrow(side: int) -> np.ndarray:
    tile = np.full((side, ARROW_W, 3), 255, np.uint8)
    cv2.arrowedLine(tile, (4, side // 2), (ARROW_W - 4, side // 2), (90, 90, 90), 2, tipLength=0.4)
    return tile


def _caption(text: str, width: int, lines: int) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    from datagen.collage.fonts import font_path

    font = ImageFont.truetype(str(font_path("DejaVu Sans", "regular")), 13)
    img = Image.new("RGB", (width, 17 * lines + 6), "white")
    wrapped = textwrap.wrap(text, max(20, int(width / 7.2)))[:lines]
    ImageDraw.Draw(img).multiline_text((4, 3), "\n".join(wrapped), font=font, fill=(20, 20, 20), spacing=4)
    return np.asarray(img)


def contact_sheet(samples: list[Sample], side: int = 160, caption_lines: int = 3) -> np.ndarray:
    """RGB sheet: each row `[task] inputs -> outputs` with the instruction wrapped under it."""
    strips = []
    for s in samples:
        tiles = [_thumb(p.pixels, side) for p in s.inputs]
        if tiles:
            tiles.append(_arrow(side))
        tiles += [_thumb(p.pixels, side) for p in s.outputs]
        strips.append(np.hstack(tiles))
    width = max(max(st.shape[1] for st in strips), 4 * side)
    rows = []
    for s, strip in zip(samples, strips):
        strip = np.pad(strip, ((0, 0), (0, width - strip.shape[1]), (0, 0)), constant_values=255)
        caption = _caption(f"[{s.task}] {s.instruction}", width, caption_lines)
        rows.append(np.vstack([strip, caption, np.full((8, width, 3), 235, np.uint8)]))
    return np.vstack(rows)
