"""A storyboard demo video made offline: shots of one character, plus one shot without her.

Five shots of scikit-image's astronaut photo (different framings, each a slow push-in or
pan, so every shot is a camera move, not a still) and one shot of the coffee photo, which
a storyboard must leave out (its subject differs). MPEG-4 Part 2 through PyAV with FFmpeg's
bit-exact settings (integer DCT, simple IDCT, `+bitexact`), frames warped with the exact
fixed-point warp: the file's bytes are the same on every CPU.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from datagen.images import warp_affine
from datagen.portable import portable_cv
from datagen.video.synthetic import write_video

# (photo, (x0, y0, side) first framing, (dx, dy, dside) drift over the shot, mirrored,
# colour grade per channel): like real coverage of one person, shots differ in framing,
# side and grade, so the cut detector sees cuts and the identity scorer sees one face.
SHOTS = [
    ("astronaut", (40, 0, 400), (20, 10, -40), False, (1.0, 1.0, 1.0)),  # medium shot, push in
    ("astronaut", (120, 10, 230), (-30, 0, 0), True, (1.15, 1.0, 0.8)),  # close-up, warm, pan
    ("coffee", (40, 20, 360), (40, 0, 0), False, (1.0, 1.0, 1.0)),  # cutaway: another subject
    ("astronaut", (0, 0, 512), (30, 0, -90), False, (0.8, 0.95, 1.2)),  # wide, cool, push in
    ("astronaut", (100, 0, 300), (0, 20, 20), True, (1.0, 0.9, 0.9)),  # medium close-up, pull out
    ("astronaut", (150, 30, 200), (10, 10, -20), False, (0.75, 0.75, 0.75)),  # tight close-up, dim
]


def make_storyboard_clip(out_dir: str | Path, seed: int = 0, size: tuple[int, int] = (320, 240),
                         fps: int = 12, shot_s: float = 2.0) -> Path:
    """Write `storyboard_demo_<seed>.mp4` into `out_dir`; the bytes depend only on the arguments."""
    import skimage.data as skd

    rng = np.random.default_rng(seed)
    out = Path(out_dir) / f"storyboard_demo_{seed}.mp4"
    out.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    n = int(round(fps * shot_s))
    # The seed picks the edit: which shot opens, and the order of the rest.
    order = [int(k) for k in rng.permutation(len(SHOTS))]
    photos = {name: getattr(skd, name)()[:, :, :3] for name in {shot[0] for shot in SHOTS}}  # decode once

    def frames():
        for name, (x0, y0, side), (dx, dy, ds), mirror, grade in (SHOTS[k] for k in order):
            photo = np.clip(photos[name] * np.float32(grade), 0, 255).astype(np.uint8)
            photo = photo[:, ::-1].copy() if mirror else photo
            jitter = rng.uniform(-4, 4, 2)
            for i in range(n):
                t = i / max(n - 1, 1)
                s = side + ds * t
                x, y = x0 + dx * t + jitter[0], y0 + dy * t + jitter[1]
                # A 4:3 window of height s, warped with sub-pixel accuracy (smooth motion).
                sx, sy = (s * w / h) / w, s / h
                m = np.array([[sx, 0.0, x], [0.0, sy, y]], np.float32).astype(np.float64)
                yield warp_affine(photo, m, (w, h), inverse=True, border=cv2.BORDER_REFLECT)

    # OpenCV's default bit rate for its mp4v writer (what this clip was first made with).
    with portable_cv():
        return write_video(out, frames(), fps, "mpeg4", bit_rate=w * h * fps)
