"""Named colours: the words instructions use and the exact RGB values drawn for them.

Instructions say "red" and the pixels are exactly `NAMED["red"]`, so a checker can find a
named colour by value. Every two named colours differ by at least 60 levels in some
channel, so a colour match within a few levels is never ambiguous.
"""

from __future__ import annotations

import numpy as np

RGB = tuple[int, int, int]

# Colours for things that are drawn (text, shapes, boxes, overlays, segmentation labels).
NAMED: dict[str, RGB] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 30),
    "yellow": (245, 210, 30),
    "green": (40, 160, 70),
    "blue": (40, 90, 220),
    "purple": (135, 60, 190),
    "pink": (245, 120, 185),
    "brown": (120, 75, 35),
    "black": (20, 20, 20),
    "white": (250, 250, 250),
    "cyan": (40, 200, 230),
    "grey": (128, 128, 128),
}

# Calm colours for plain and gradient backgrounds; none is close to a NAMED colour except
# "white"/"light grey"-like ones, which callers exclude where counting by colour matters.
BACKGROUNDS: dict[str, RGB] = {
    "light grey": (214, 214, 214),
    "beige": (238, 226, 198),
    "light blue": (196, 222, 244),
    "pale green": (206, 236, 206),
    "lavender": (224, 216, 244),
    "cream": (252, 248, 228),
    "dark grey": (64, 64, 64),
    "navy": (26, 34, 84),
    "white": (250, 250, 250),
    "dark green": (24, 64, 40),
}


def article(phrase: str) -> str:
    """'a red star' / 'an orange ball' (by spelling, which is right for our vocabulary)."""
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def luminance(rgb) -> float:
    r, g, b = (float(v) for v in rgb)
    return 0.299 * r + 0.587 * g + 0.114 * b


def colour_distance(a, b) -> int:
    """Largest per-channel difference (L-infinity), the measure checkers use too."""
    return int(np.max(np.abs(np.asarray(a, np.int32) - np.asarray(b, np.int32))))


def segment_distance(colour, start, end) -> float:
    """L-infinity distance from `colour` to the straight RGB segment start->end (a gradient)."""
    c, s, e = (np.asarray(v, np.float64) for v in (colour, start, end))
    d = e - s
    t = 0.0 if not d.any() else float(np.clip(np.dot(c - s, d) / np.dot(d, d), 0.0, 1.0))
    # The L-infinity nearest point may differ slightly from the L2 one; sample around it.
    ts = np.clip(np.linspace(t - 0.1, t + 0.1, 21), 0.0, 1.0)
    pts = s[None, :] + ts[:, None] * d[None, :]
    return float(np.min(np.max(np.abs(pts - c[None, :]), axis=1)))
