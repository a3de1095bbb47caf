"""Cross-transition pairs: frame A before a cut, frame B after it, from one source video.

Two kinds (iMontage trains on pairs across shot changes, not only within shots):
- "cut": a detected hard cut; A is the last sampled frame of a shot, B the first of the
  next. Same video, so usually the same people and place seen from another camera.
- "stitched": two clips of one shot at least `min_separation_s` apart are treated as if
  edited together (when a cut lies between them, none is made); B is re-cropped (a tighter
  framing at a random position, resized back to the frame size), the classic cut to a
  closer shot. The crop box is kept in meta.

A third kind, re-cuts that splice two different shots of the video at random moments
(task `video.recut`), lives in `recuts.py`.
"""

from __future__ import annotations

import cv2
import numpy as np


def plan_stitches(duration: float, n: int, min_separation_s: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    """`n` (t_a, t_b) time pairs with t_b - t_a >= min_separation_s, or none if too short."""
    if n <= 0 or duration < min_separation_s:
        return []
    out = []
    for _ in range(n):
        ta = float(rng.uniform(0.0, duration - min_separation_s))
        tb = float(rng.uniform(ta + min_separation_s, duration))
        out.append((ta, tb))
    return sorted(out)


def recrop(rgb: np.ndarray, rng: np.random.Generator, scale_range: tuple[float, float]) -> tuple[np.ndarray, list[float]]:
    """A random tighter framing of `rgb` at the same size and aspect; returns it and the
    normalised (x0, y0, x1, y1) window it came from."""
    h, w = rgb.shape[:2]
    s = float(rng.uniform(*scale_range))
    cw, ch = max(2, round(w * s)), max(2, round(h * s))
    x0 = int(rng.integers(0, w - cw + 1))
    y0 = int(rng.integers(0, h - ch + 1))
    crop = rgb[y0 : y0 + ch, x0 : x0 + cw]
    out = cv2.resize(crop, (w, h), interpolation=cv2.INTER_CUBIC)
    return out, [x0 / w, y0 / h, (x0 + cw) / w, (y0 + ch) / h]
