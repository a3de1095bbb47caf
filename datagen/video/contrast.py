"""Contrast normalisation before optical flow, so texture is judged relative to the frame.

Why: dense flow, the texture mask (a fixed corner-eigenvalue floor) and the photometric
check (a fixed grey-level tolerance) all work in absolute grey levels. A real photo with
little contrast (fog, haze, a grey-level standard deviation of ~8) then looks flat almost
everywhere: a 8 px pan at 720p read as ~1 px with 0.1% of the frame "textured". Stretching
both frames by one shared linear map (the same for A and B, so matching is unchanged)
brings such footage to the contrast the thresholds were set on.

Global, not local (CLAHE): one gain keeps brightness differences between A and B intact,
costs a histogram and a table lookup, and is exact integer work (the same bytes on every
CPU). Footage whose 1st-99th percentile spread already reaches `TARGET_SPREAD` grey levels
(every ordinary photo) passes through untouched. Below `MIN_SPREAD` levels there is
nothing but codec noise: such a pair has no observable motion, whatever the gain.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Grey levels between the 1st and 99th percentile that ordinary footage spans at least
# (scikit-image's photos: 154-248); lower-contrast frames are stretched to it.
TARGET_SPREAD = 128
MAX_GAIN = 8.0  # past this, codec noise grows into false texture faster than the signal
MIN_SPREAD = 4  # a frame pair spanning fewer levels has no contrast to follow
TAIL = 0.01  # share of pixels ignored at each end (specular highlights, black borders)


@dataclass(frozen=True)
class Stretch:
    gain: float  # 1.0: frames left as they were
    spread: int  # grey levels between the 1st and 99th percentile of both frames, before stretching
    lut: np.ndarray | None = None  # the map itself (None: identity), for colour frames (RAFT)

    @property
    def flat(self) -> bool:
        return self.spread < MIN_SPREAD


def stretch_pair(grey_a: np.ndarray, grey_b: np.ndarray) -> tuple[np.ndarray, np.ndarray, Stretch]:
    """Both uint8 grey frames through one linear map to `TARGET_SPREAD` levels (capped gain),
    centred on mid-grey; returned unchanged when their contrast is already enough."""
    lo, hi = pair_range(grey_a, grey_b)
    spread = hi - lo
    if spread >= TARGET_SPREAD:
        return grey_a, grey_b, Stretch(1.0, spread)
    gain = min(MAX_GAIN, TARGET_SPREAD / max(spread, 1))
    # A lookup table computed with IEEE +,*,round only: exact and CPU-independent.
    levels = np.arange(256, dtype=np.float64)
    lut = np.clip(np.round(128.0 + (levels - (lo + hi) / 2.0) * gain), 0, 255).astype(np.uint8)
    return lut[grey_a], lut[grey_b], Stretch(float(gain), spread, lut)


def pair_range(grey_a: np.ndarray, grey_b: np.ndarray) -> tuple[int, int]:
    """1st and 99th percentile grey level over both frames."""
    hist = _histogram(grey_a) + _histogram(grey_b)
    return _percentile(hist, TAIL), _percentile(hist, 1.0 - TAIL)


def is_flat(grey_a: np.ndarray, grey_b: np.ndarray) -> bool:
    """No contrast to follow in either frame: motion between them cannot be observed."""
    lo, hi = pair_range(grey_a, grey_b)
    return hi - lo < MIN_SPREAD


def _histogram(grey: np.ndarray) -> np.ndarray:
    # Integer counts (exact in calcHist's float32 below 2^24 pixels per frame); ~5x faster than
    # np.bincount, which matters because every pair of every video pays it.
    return cv2.calcHist([grey], [0], None, [256], [0, 256]).ravel().astype(np.int64)


def _percentile(hist: np.ndarray, q: float) -> int:
    """The grey level below which a share `q` of the pixels lie (integer counts: exact)."""
    cum = np.cumsum(hist)
    return int(np.searchsorted(cum, q * int(cum[-1]), side="left"))
