"""Position words: a 3x3 grid over the canvas, named the way prompts name places.

An object is "in the top left corner" when the centre of its box lies in the top-left
ninth of the canvas. Generators draw centres from a cell shrunk by a small inset, so no
object sits on a cell border where the word would be a coin toss.
"""

from __future__ import annotations

CELLS: dict[str, tuple[int, int]] = {
    "top left": (0, 0),
    "top": (1, 0),
    "top right": (2, 0),
    "left": (0, 1),
    "center": (1, 1),
    "right": (2, 1),
    "bottom left": (0, 2),
    "bottom": (1, 2),
    "bottom right": (2, 2),
}

PHRASES: dict[str, str] = {
    "top left": "in the top left corner",
    "top": "at the top",
    "top right": "in the top right corner",
    "left": "on the left",
    "center": "in the center",
    "right": "on the right",
    "bottom left": "in the bottom left corner",
    "bottom": "at the bottom",
    "bottom right": "in the bottom right corner",
}

# Share of a cell's side kept clear of its borders when drawing a centre inside it.
INSET = 0.06


def cell_of(cx: float, cy: float, size: int) -> str:
    col = min(2, max(0, int(3 * cx / size)))
    row = min(2, max(0, int(3 * cy / size)))
    return next(name for name, cr in CELLS.items() if cr == (col, row))


def cell_area(name: str, size: int, inset: float = INSET) -> tuple[float, float, float, float]:
    """Pixel box (x0, y0, x1, y1) a centre must fall in to be `name`, kept off the borders."""
    col, row = CELLS[name]
    side = size / 3.0
    pad = inset * side
    return (col * side + pad, row * side + pad, (col + 1) * side - pad, (row + 1) * side - pad)


def is_clear(cx: float, cy: float, size: int, inset: float = INSET) -> bool:
    """True when the centre is not within `inset` of a cell border (the word is unambiguous)."""
    x0, y0, x1, y1 = cell_area(cell_of(cx, cy, size), size, inset)
    return x0 <= cx <= x1 and y0 <= cy <= y1
