"""Fonts for rendered text: matplotlib's bundled TTFs, found on disk, rendered with PIL.

matplotlib ships DejaVu Sans/Serif/Mono, STIX and Computer Modern wherever it is
installed, so every worker has the same glyphs without a download.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

# family -> style -> file name in matplotlib's mpl-data/fonts/ttf.
FONTS: dict[str, dict[str, str]] = {
    "DejaVu Sans": {
        "regular": "DejaVuSans.ttf",
        "bold": "DejaVuSans-Bold.ttf",
        "italic": "DejaVuSans-Oblique.ttf",
        "bold italic": "DejaVuSans-BoldOblique.ttf",
    },
    "DejaVu Serif": {
        "regular": "DejaVuSerif.ttf",
        "bold": "DejaVuSerif-Bold.ttf",
        "italic": "DejaVuSerif-Italic.ttf",
        "bold italic": "DejaVuSerif-BoldItalic.ttf",
    },
    "DejaVu Sans Mono": {
        "regular": "DejaVuSansMono.ttf",
        "bold": "DejaVuSansMono-Bold.ttf",
        "italic": "DejaVuSansMono-Oblique.ttf",
        "bold italic": "DejaVuSansMono-BoldOblique.ttf",
    },
    "STIX": {
        "regular": "STIXGeneral.ttf",
        "bold": "STIXGeneralBol.ttf",
        "italic": "STIXGeneralItalic.ttf",
        "bold italic": "STIXGeneralBolIta.ttf",
    },
    "Computer Modern": {"regular": "cmr10.ttf", "bold": "cmb10.ttf", "italic": "cmti10.ttf"},
    "Computer Modern Sans": {"regular": "cmss10.ttf"},
    "Computer Modern Typewriter": {"regular": "cmtt10.ttf"},
}

FONT_CHOICES: tuple[tuple[str, str], ...] = tuple((fam, st) for fam, styles in FONTS.items() for st in styles)


@functools.cache
def font_dir() -> Path:
    import matplotlib  # the fonts live in its data folder; imported only when text is drawn

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def font_path(family: str, style: str) -> Path:
    path = font_dir() / FONTS[family][style]
    if not path.is_file():
        raise FileNotFoundError(f"font file {path.name} for {family} {style} is missing in {path.parent}")
    return path


@functools.lru_cache(maxsize=256)
def _font(family: str, style: str, px: int):
    from PIL import ImageFont

    return ImageFont.truetype(str(font_path(family, style)), px)


def render_text(text: str, family: str, style: str, px: int) -> np.ndarray:
    """Coverage (0-255) of `text` on one line, cropped to its ink: an HxW uint8 alpha."""
    from PIL import Image

    core, _offset = _font(family, style, px).getmask2(text, mode="L")
    if not all(core.size):
        return np.zeros((0, 0), np.uint8)
    alpha = np.asarray(Image.Image()._new(core))  # wraps the glyph buffer without a byte copy
    ys, xs = np.nonzero(alpha)
    if len(xs) == 0:
        return np.zeros((0, 0), np.uint8)
    return np.ascontiguousarray(alpha[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])
