"""The camera part of frame-to-frame motion: a similarity (shift, zoom, roll) fitted robustly.

All models are 2x3 matrices mapping a pixel of frame A to where it appears in frame B, in
the coordinates of the images they were fitted on.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from datagen.portable import matmul
from datagen.video.optical_flow import dis_flow

# Minimum structure-tensor eigenvalue (cv2.cornerMinEigenVal on grey scaled to [0, 1]) for
# a pixel's flow to count as observed; flat sky and walls sit far below it.
TEXTURE_MIN = 0.004
MIN_POINTS = 24
MAX_POINTS = 1500  # a regular subsample: RANSAC stays fast and needs no random state
# Phase-correlation peak strength above which its shift seeds the coarse pass.
PHASE_MIN = 0.1
COARSE_MIN_SIDE = 64
COARSE_ROUNDS = 3
# The coarse image is tiny (~80 px): DIS solves it at full resolution; ULTRAFAST there costs
# a third of FAST and only loses on extreme zooms (>30% between two sampled frames).
COARSE_FINEST = 0
COARSE_PRESET = cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST
IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


@functools.lru_cache(maxsize=16)
def grid(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    xs.flags.writeable = ys.flags.writeable = False
    return xs, ys


@functools.lru_cache(maxsize=16)
def _hann(w: int, h: int) -> np.ndarray:
    return cv2.createHanningWindow((w, h), cv2.CV_32F)


def texture(grey: np.ndarray, block: int = 5) -> np.ndarray:
    return cv2.cornerMinEigenVal(grey.astype(np.float32) * (1.0 / 255.0), blockSize=block, ksize=3)


def apply(model: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (
        model[0, 0] * x + model[0, 1] * y + model[0, 2],
        model[1, 0] * x + model[1, 1] * y + model[1, 2],
    )


# Matrix products and inverses below avoid BLAS/LAPACK (`portable.matmul`, closed forms):
# their kernels differ per CPU in the last bits, and these models steer discrete choices.
def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The map p -> outer(inner(p)) as a 2x3 matrix."""
    return matmul(np.vstack([outer, [0, 0, 1]]), np.vstack([inner, [0, 0, 1]]))[:2]


def rescale(model: np.ndarray, kx: float, ky: float) -> np.ndarray:
    """The same motion in coordinates scaled by (kx, ky); pixel centre u maps to (u+0.5)k-0.5."""
    bx, by = 0.5 * kx - 0.5, 0.5 * ky - 0.5
    up = np.array([[kx, 0, bx], [0, ky, by], [0, 0, 1]])
    down = np.array([[1 / kx, 0, -bx / kx], [0, 1 / ky, -by / ky], [0, 0, 1]])  # inverse of `up`
    return matmul(matmul(up, np.vstack([model, [0, 0, 1]])), down)[:2]


def warp(img: np.ndarray, model: np.ndarray, w: int, h: int, border=cv2.BORDER_REPLICATE, value=0.0) -> np.ndarray:
    """img sampled at model(p): brings B onto A's pixel grid."""
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(img, model, (w, h), flags=flags, borderMode=border, borderValue=value)


def inside(x: np.ndarray, y: np.ndarray, w: int, h: int, margin: float = 2.0) -> np.ndarray:
    return (x >= margin) & (x <= w - 1 - margin) & (y >= margin) & (y <= h - 1 - margin)


def fit(flow: np.ndarray, mask: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, float]:
    """Similarity from A to B explaining `flow` (at pixel positions xs, ys) where `mask`,
    robust to local motion (RANSAC, then least squares on its inliers); identity and 0.0
    when too little is observable."""
    idx = np.flatnonzero(mask)
    if idx.size < MIN_POINTS:
        return IDENTITY.copy(), 0.0
    idx = idx[:: max(1, idx.size // MAX_POINTS)]
    src = np.stack([xs.ravel()[idx], ys.ravel()[idx]], axis=1).astype(np.float32)
    dst = src + flow.reshape(-1, 2)[idx]
    model, inliers = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=1.0, maxIters=2000, confidence=0.995, refineIters=0
    )
    if model is None or inliers is None:
        return IDENTITY.copy(), 0.0
    keep = inliers.ravel().astype(bool)
    if keep.sum() >= MIN_POINTS:
        model = _least_squares(src[keep], dst[keep])
    return model, float(keep.mean())


def _least_squares(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    # x' = a x - b y + tx, y' = b x + a y + ty: the least-squares similarity in closed form
    # (centred coordinates), with correctly rounded sums instead of a LAPACK solve.
    n = len(src)
    x, y = src[:, 0].astype(np.float64), src[:, 1].astype(np.float64)
    u, v = dst[:, 0].astype(np.float64), dst[:, 1].astype(np.float64)
    mx, my, mu, mv = (_fsum(c) / n for c in (x, y, u, v))
    xc, yc, uc, vc = x - mx, y - my, u - mu, v - mv
    norm = _fsum(xc * xc) + _fsum(yc * yc)
    if norm == 0.0:
        return IDENTITY.copy()
    a = (_fsum(xc * uc) + _fsum(yc * vc)) / norm
    b = (_fsum(xc * vc) - _fsum(yc * uc)) / norm
    return np.array([[a, -b, mu - (a * mx - b * my)], [b, a, mv - (b * mx + a * my)]])


def _fsum(values: np.ndarray) -> float:
    return math.fsum(values.tolist())


def coarse_model(ga: np.ndarray, gb: np.ndarray) -> np.ndarray:
    """Similarity A->B (in ga's coordinates) from a pass at a quarter of its size.

    Phase correlation finds a dominant shift of any size (dense flow alone loses track past
    ~10% of the frame: a fast pan sampled at 2 fps); DIS on B moved back by the current
    model finds zoom and roll, a few rounds deep (a 20 degree roll moves corners by tens of
    pixels at working size, a few here). A flat frame can give a spurious correlation peak
    or fit, so every step keeps whichever model actually brings B onto A best.
    """
    h, w = ga.shape
    s = max(COARSE_MIN_SIDE, max(w, h) // 4) / max(w, h)
    cw, ch = (max(8, round(w * s)), max(8, round(h * s))) if s < 1 else (w, h)
    ca, cb = (cv2.resize(g, (cw, ch), interpolation=cv2.INTER_AREA) for g in (ga, gb)) if s < 1 else (ga, gb)
    xs, ys = grid(cw, ch)
    textured = texture(ca, 3) > TEXTURE_MIN
    model, best = IDENTITY.copy(), misfit(ca, cb, IDENTITY)
    (px, py), response = cv2.phaseCorrelate(ca.astype(np.float32), cb.astype(np.float32), _hann(cw, ch))
    if response >= PHASE_MIN:
        shift = np.array([[1.0, 0.0, px], [0.0, 1.0, py]])
        if (m := misfit(ca, cb, shift)) < best:
            model, best = shift, m
    for _ in range(COARSE_ROUNDS):
        f = dis_flow(ca, warp(cb, model, cw, ch), finest=COARSE_FINEST, preset=COARSE_PRESET)
        resid, inliers = fit(f, textured & inside(xs + f[..., 0], ys + f[..., 1], cw, ch, 1.0), xs, ys)
        if inliers == 0.0:
            break
        candidate = compose(model, resid)
        m = misfit(ca, cb, candidate)
        if m >= best:
            break
        model, best = candidate, m
        if np.abs(resid - IDENTITY).max() < 0.02 and np.abs(resid[:, 2]).max() < 0.1:
            break
    return rescale(model, w / cw, h / ch)


def misfit(ga: np.ndarray, gb: np.ndarray, model: np.ndarray) -> float:
    """Mean grey difference of A and B warped by `model`, where the warp stays inside B."""
    h, w = ga.shape
    warped = warp(gb.astype(np.float32), model, w, h, cv2.BORDER_CONSTANT, -1.0)
    valid = warped >= 0
    if valid.mean() < 0.2:
        return float("inf")
    # The smaller misfit picks the model: a correctly rounded mean, the same on every CPU.
    return _fsum(np.abs(warped[valid] - ga[valid]).astype(np.float64)) / int(valid.sum())


def alignment(ga: np.ndarray, gb: np.ndarray, model: np.ndarray) -> float:
    """Normalised cross-correlation of A and B warped onto it, over their overlap: > 0.9
    within a shot (even for half-frame pans), < 0.4 across a cut. -1 when overlap or
    contrast is too small to say."""
    h, w = ga.shape
    warped = warp(gb.astype(np.float32), model, w, h, cv2.BORDER_CONSTANT, -1.0)
    overlap = cv2.erode((warped >= 0).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    if overlap.mean() < 0.15:
        return -1.0
    x = ga[overlap].astype(np.float64)
    y = warped[overlap].astype(np.float64)
    n = len(x)
    x -= _fsum(x) / n
    y -= _fsum(y) / n
    sxx, syy = _fsum(x * x), _fsum(y * y)
    if sxx < 4.0 * n or syy < 4.0 * n:  # standard deviation below 2 grey levels
        return -1.0
    return _fsum(x * y) / math.sqrt(sxx * syy)
