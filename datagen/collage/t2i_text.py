"""t2i.text: words rendered in a named font, colour, style, size and place.

The prompt names the exact string, colour, family, style, size word and position; the
output shows exactly that, fully inside the canvas, in a colour that contrasts with what
lies under it. No inputs.
"""

from __future__ import annotations

import numpy as np

from datagen.collage import compose, grid, instructions, palette, scene
from datagen.collage.compose import Unlucky
from datagen.collage.fonts import FONT_CHOICES, FONTS, render_text
from datagen.schema import Picture, Region, Sample

VERSION = 1

WORDS = (
    "hello", "welcome", "open", "closed", "sale", "coffee", "garden", "summer", "winter", "ocean", "forest",
    "music", "dream", "bakery", "library", "station", "exit", "stop", "danger", "fresh", "organic", "galaxy",
    "rocket", "sunrise", "harbor", "market", "studio", "cinema", "museum", "theater", "pizza", "noodles",
    "tea", "books", "travel", "adventure", "puzzle", "robot", "planet", "thunder", "velvet", "copper",
    "lemon", "mango", "cherry", "island", "canyon", "glacier", "meadow", "lantern", "compass", "anchor",
    "Paris", "Tokyo", "Berlin", "Lagos", "Lima", "Oslo", "Cairo", "Seoul", "Quebec", "Nairobi",
    "2024", "42", "100", "7 days", "No 5", "Route 66", "Level 3", "Room 12",
)
PHRASES = (
    "good morning", "happy birthday", "thank you", "see you soon", "fresh bread daily", "keep calm",
    "open late", "grand opening", "best in town", "hello world", "dream big", "stay curious",
    "made with love", "free wifi", "now playing", "coming soon", "under construction", "live music",
    "hot coffee", "summer sale", "lost and found", "do not enter", "welcome home", "night market",
)
CASES = ("as is", "upper", "title")

# Font size (px) as a share of the canvas side, per size word; ranges leave gaps between them.
SIZES = {"small": (0.06, 0.075), "medium": (0.09, 0.115), "large": (0.135, 0.17), "huge": (0.2, 0.26)}
# Below these sizes a font's strokes have no fully covered pixels: the text reads as a haze
# of blended colour. Hairline faces (Computer Modern, STIX italic) need more pixels.
MIN_FONT_PX = 16
MIN_FONT_PX_THIN = 26


def min_px(family: str, style: str) -> int:
    thin = family.startswith("Computer Modern") or (family == "STIX" and "italic" in style)
    return MIN_FONT_PX_THIN if thin else MIN_FONT_PX
# Text must fit with this share of the canvas left free on every side.
BORDER = 0.04
# Share of the glyph pixels that must be fully covered (exactly the named colour).
SOLID_SHARE = 0.15
# Luminance difference the text colour keeps from the mean background under it.
CONTRAST = 90.0


def _pick_text(rng) -> str:
    pool = WORDS if rng.random() < 0.6 else PHRASES
    text = pool[int(rng.integers(len(pool)))]
    case = CASES[int(rng.integers(len(CASES)))]
    return text.upper() if case == "upper" else text.title() if case == "title" else text


def make(rng, spec, pack) -> Sample:
    size = pack.size
    text = _pick_text(rng)
    # Only (font, size word) pairs this canvas can render legibly; small canvases get big text.
    options = [(f, st, word) for f, st in FONT_CHOICES for word, (_, hi) in SIZES.items()
               if hi * size >= min_px(f, st)]
    if not options:
        raise Unlucky("canvas_too_small_for_text")
    family, style, size_word = options[int(rng.integers(len(options)))]
    lo, hi = SIZES[size_word]
    px = max(min_px(family, style), int(round(size * rng.uniform(lo, hi))))
    alpha = render_text(text, family, style, px)
    h, w = alpha.shape
    border = int(np.ceil(size * BORDER))
    if h == 0 or w > size - 2 * border or h > size - 2 * border:
        raise Unlucky("text_too_wide")
    # The text's centre goes in the named cell and its box stays inside the border: wide
    # text can only be centred, so pick among the cells it fits.
    ranges = {}
    for name in grid.CELLS:
        x0, y0, x1, y1 = grid.cell_area(name, size)
        rx = (max(x0, border + w / 2), min(x1, size - border - w / 2))
        ry = (max(y0, border + h / 2), min(y1, size - border - h / 2))
        if rx[0] <= rx[1] and ry[0] <= ry[1]:
            ranges[name] = (rx, ry)
    if not ranges:
        raise Unlucky("text_does_not_fit")
    where = list(ranges)[int(rng.integers(len(ranges)))]
    (lo_x, hi_x), (lo_y, hi_y) = ranges[where]
    x = int(np.floor(rng.uniform(lo_x, hi_x) - w / 2))
    y = int(np.floor(rng.uniform(lo_y, hi_y) - h / 2))

    bg = scene.any_background(rng, pack)
    under = bg.pixels[y : y + h, x : x + w][alpha > 127]
    mean = under.mean(axis=0) if len(under) else bg.pixels[y : y + h, x : x + w].reshape(-1, 3).mean(axis=0)
    colours = [n for n, rgb in palette.NAMED.items() if abs(palette.luminance(rgb) - palette.luminance(mean)) >= CONTRAST]
    if not colours:
        raise Unlucky("low_contrast")
    colour = colours[int(rng.integers(len(colours)))]

    # Glyph coverage becomes the alpha of a flat-colour patch (premultiplied).
    patch = np.dstack([(alpha.astype(np.uint16) * c // 255).astype(np.uint8) for c in palette.NAMED[colour]] + [alpha])
    patch, ox, oy = compose.clean(patch)
    ink = patch[:, :, 3]
    if np.count_nonzero(ink == 255) < SOLID_SHARE * np.count_nonzero(ink):
        raise Unlucky("text_too_thin")
    x, y = x + ox, y + oy
    if grid.cell_of(x + patch.shape[1] / 2, y + patch.shape[0] / 2, size) != where:
        raise Unlucky("text_left_cell")
    canvas = bg.pixels.copy()
    compose.blend(canvas, patch, x, y)
    mask = compose.patch_mask(patch, x, y, size)

    bare = bg.name
    text_out, k = instructions.say(
        rng, "t2i.text", text=text, style=style, colour=colour, family=family, where=grid.PHRASES[where],
        background=palette.article(bare), background_cap=palette.article(bare).capitalize(), size_word=size_word,
        size_word_cap=size_word.capitalize())
    meta = {
        "text": text, "font_family": family, "font_style": style, "font_file": FONTS[family][style],
        "font_px": px, "size_word": size_word, "colour": colour, "rgb": list(palette.NAMED[colour]),
        "position": where, "box_px": [x, y, x + patch.shape[1], y + patch.shape[0]],
        "background": bg.name, "template": k,
    }
    return Sample(task="t2i.text", instruction=text_out, inputs=[], outputs=[Picture(canvas, "target")],
                  regions=[Region("text", "output", 0, mask)], meta=meta, source_ids=scene.Scene(bg).source_ids(),
                  generator=f"datagen.collage.t2i_text@{VERSION}")

