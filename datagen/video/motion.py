"""How much two frames move, in pixels of the original frames, computed at a small size.

Why not "mean flow magnitude": dense flow is only observable where the image has texture.
In flat regions (sky, walls, a white background) every method fills in something smooth and
small, so the plain mean under-reads camera motion by roughly the flat fraction of the
frame (a 20 px pan over a frame that is 80% sky reads as ~3 px). What we report instead is
the mean length of the best motion field we can defend, over the whole frame:

0. Contrast first: a low-contrast pair (fog, haze, a flat grade) is stretched by one linear map
   shared by both frames (`contrast.py`), so texture, the photometric check and the flow
   are judged relative to the frame. A pair with no contrast at all, or fewer trusted
   vectors than the camera fit needs, is `measurable=False`: its numbers are no measurement,
   and the video-pairs product rejects it as `unmeasurable_motion` instead of calling it static.
1. Camera: a similarity (shift, zoom, roll) fitted robustly (RANSAC, then least squares) to
   flow at textured pixels whose match B confirms photometrically, then evaluated at
   *every* pixel: the camera moves a flat wall exactly as it moves the textured parts.
2. Local: where the measured flow departs from the camera model (a walking person, a car)
   and B confirms the match, the measured flow replaces the model. Such regions are seeded
   at textured pixels and grown a few pixels into the object around them; deep inside a
   flat moving object motion is unobservable and the camera model stands. The default
   "dis" pass solves at a quarter of the working size, so small movers are partly missed
   (a 60x60 px object moving 15 px at 320 px reads at ~1/3); "dis_fine" goes one pyramid
   level finer (~3x the cost) and reads most of it.

`motion_px` is in original pixels; `motion_norm` divides it by the frame diagonal so one
threshold serves every resolution. Work happens at `work_side` pixels on the long side
(each DIS pass takes a few ms there): a coarse pass (see `camera.coarse_model`) handles
motions up to about half the frame, a full-size pass on B warped by the coarse model then
measures only a small residual, which dense flow reads without the 2-5% under-read it shows
on zooms and rolls. The fit averages hundreds of vectors, so 0.5 px at 720p (0.125 px at
working size) is still resolved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from datagen.portable import portable_cv
from datagen.schema import quantize
from datagen.video import camera
from datagen.video.contrast import stretch_pair
from datagen.video.optical_flow import dense_flow

WORK_SIDE = 320
# Grey-level difference between A and motion-compensated B above which a match is not
# trusted (occlusion, content leaving the frame, flow failure); codec noise stays well below.
PHOTO_MAX = 24
# Residual (working px) above which a confirmed vector is local motion rather than camera.
LOCAL_MIN = 1.5
# Local-motion seeds need only a tenth of the texture the camera fit needs.
LOCAL_SEED_TEXTURE = 0.1
SUB = 2  # read the flow field at every SUB-th pixel
LOCAL_GROW = np.ones((4, 4), np.uint8)  # ~8 working px


@dataclass(frozen=True)
class MotionEstimate:
    motion_px: float  # mean motion over the frame, original pixels
    motion_norm: float  # motion_px / frame diagonal
    camera_px: float  # mean length of the camera (similarity) part over the frame
    local_px: float  # what local motion adds to the mean
    pan_px: tuple[float, float]  # where the frame centre moves, original px (content motion)
    zoom: float  # >1: content grows (camera zooms in / moves closer)
    rotation_deg: float  # counter-clockwise content roll as seen on screen (y down)
    inlier_fraction: float  # share of trusted vectors the camera model explains
    texture_fraction: float  # share of the frame where flow is observable
    matched_fraction: float  # share of A's textured pixels found again in B (low across a cut)
    alignment: float  # NCC of A and camera-compensated B over their overlap; -1 when unknown
    method: str
    model: tuple[tuple[float, ...], tuple[float, ...]] = field(default=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)))
    contrast_gain: float = 1.0  # how much both frames were stretched before the flow (contrast.py)
    # False when too little of the frame can be followed (no contrast, or fewer trusted vectors
    # than the camera fit needs): the numbers above are then not a measurement and a pair is
    # rejected as `unmeasurable_motion` instead of being called static.
    measurable: bool = True

    def as_meta(self) -> dict:
        return {
            "pan_px": [round(self.pan_px[0], 2), round(self.pan_px[1], 2)],
            "zoom": round(self.zoom, 4),
            "rotation_deg": round(self.rotation_deg, 3),
            "camera_px": round(self.camera_px, 3),
            "local_px": round(self.local_px, 3),
            "inlier_fraction": round(self.inlier_fraction, 3),
            "texture_fraction": round(self.texture_fraction, 3),
            "matched_fraction": round(self.matched_fraction, 3),
            "alignment": round(self.alignment, 3),
            "contrast_gain": round(self.contrast_gain, 3),
        }


def work_size(width: int, height: int, work_side: int = WORK_SIDE) -> tuple[int, int]:
    """(w, h) at which motion is computed: long side `work_side`, never upscaled."""
    s = min(1.0, work_side / max(width, height))
    return max(8, round(width * s)), max(8, round(height * s))


def to_work(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    grey = frame if frame.ndim == 2 else cv2.cvtColor(frame[:, :, :3], cv2.COLOR_RGB2GRAY)
    if (grey.shape[1], grey.shape[0]) == size:
        return grey
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA)


def flow_magnitude(frame_a: np.ndarray, frame_b: np.ndarray, method: str = "dis", **kwargs) -> float:
    """Mean motion between two frames (uint8 RGB or grey), in pixels of the given frames."""
    return estimate_motion(frame_a, frame_b, method=method, **kwargs).motion_px


def estimate_motion(
    frame_a: np.ndarray,
    frame_b: np.ndarray,
    *,
    method: str = "dis",
    work_side: int = WORK_SIDE,
    original_size: tuple[int, int] | None = None,
    raft_dir: str | Path | None = None,
    with_alignment: bool = True,
) -> MotionEstimate:
    """Camera + local motion from A to B (uint8 RGB or grey, same size).

    Frames may already be at working size (grey, as `score_video` decodes them); pass
    `original_size` (w, h) so results are still reported in original pixels.
    `with_alignment=False` skips the cut-detection score (`alignment` is then -1).
    """
    if frame_a.shape[:2] != frame_b.shape[:2]:
        raise ValueError(f"frames differ in size: {frame_a.shape[:2]} vs {frame_b.shape[:2]}")
    # Dense flow, corner eigenvalues, phase correlation and float warps decide which vectors
    # are trusted: they run on OpenCV's baseline kernels, the same on every CPU.
    with portable_cv():
        return _estimate_motion(frame_a, frame_b, method, work_side, original_size, raft_dir, with_alignment)


def _estimate_motion(frame_a, frame_b, method, work_side, original_size, raft_dir, with_alignment) -> MotionEstimate:
    h0, w0 = frame_a.shape[:2]
    ow, oh = original_size or (w0, h0)
    size = work_size(w0, h0, work_side)
    if method == "raft":  # RAFT reads colour: keep RGB at working size for its pass
        ca, cb = (_resize(f, size) for f in (frame_a, frame_b))
        ga, gb = to_work(ca, size), to_work(cb, size)
    else:
        ga, gb = to_work(frame_a, size), to_work(frame_b, size)
    ga, gb, stretch = stretch_pair(ga, gb)
    if method != "raft":
        ca, cb = ga, gb
    elif stretch.lut is not None:
        ca, cb = stretch.lut[ca], stretch.lut[cb]
    h, w = ga.shape
    model1 = camera.coarse_model(ga, gb)
    # Full-size pass on B warped onto A: only the residual motion is left to measure.
    b_on_a = camera.warp(cb, model1, w, h)
    flow = dense_flow(ca, b_on_a, method, raft_dir=raft_dir)

    # Everything below is read at every other pixel (a quarter of the work; the fit uses
    # ~1500 vectors anyway, and means over a regular subgrid are unbiased).
    xs, ys = (g[::SUB, ::SUB] for g in camera.grid(w, h))
    f = flow[::SUB, ::SUB]
    tex = camera.texture(ga)[::SUB, ::SUB]
    textured = tex > camera.TEXTURE_MIN
    tx, ty = xs + f[..., 0], ys + f[..., 1]
    grey_b_on_a = b_on_a if b_on_a.ndim == 2 else to_work(b_on_a, size)
    seen = cv2.remap(grey_b_on_a, tx, ty, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    bx, by = camera.apply(model1, tx, ty)  # where each pixel of A lands in B
    agree = np.abs(seen.astype(np.int16) - ga[::SUB, ::SUB].astype(np.int16)) < PHOTO_MAX
    confirmed = agree & camera.inside(bx, by, w, h)
    trusted = textured & confirmed
    resid, inlier_fraction = camera.fit(f, trusted, xs, ys)
    model = camera.compose(model1, resid)

    # Camera displacement at every (sub-grid) pixel, in original px along each axis.
    sx, sy = ow / w, oh / h
    mx, my = camera.apply(model, xs, ys)
    cam = _length((mx - xs) * sx, (my - ys) * sy)
    # Local motion: confirmed vectors the camera model does not explain.
    rx, ry = camera.apply(resid, xs, ys)
    off = _length(f[..., 0] - (rx - xs), f[..., 1] - (ry - ys)) > LOCAL_MIN
    moving = confirmed & off
    seeds = moving & (tex > camera.TEXTURE_MIN * LOCAL_SEED_TEXTURE)
    local = moving & cv2.dilate(seeds.astype(np.uint8), LOCAL_GROW).astype(bool)
    measured = _length((bx[local] - xs[local]) * sx, (by[local] - ys[local]) * sy)
    camera_px = float(cam.mean())
    local_px = float((measured - cam[local]).sum() / cam.size)
    n_textured = int(textured.sum())
    n_trusted = int(trusted.sum())
    return _estimate(
        model=model,
        camera_px=camera_px,
        local_px=local_px,
        inliers=inlier_fraction,
        texture_fraction=n_textured / textured.size,
        matched=n_trusted / n_textured if n_textured else 0.0,
        alignment=camera.alignment(ga, gb, model) if with_alignment else -1.0,
        method=method,
        wh=(w, h),
        sxy=(sx, sy),
        diagonal=math.hypot(ow, oh),
        gain=stretch.gain,
        measurable=not stretch.flat and n_trusted >= camera.MIN_POINTS,
    )


def _length(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    # sqrt(dx^2 + dy^2) with IEEE operations only (NumPy's hypot may use CPU-specific kernels).
    return np.sqrt(dx * dx + dy * dy)


def _estimate(*, model, camera_px, local_px, inliers, texture_fraction, matched, alignment, method, wh, sxy, diagonal,
              gain, measurable):
    (w, h), (sx, sy) = wh, sxy
    cxw, cyw = (w - 1) / 2.0, (h - 1) / 2.0
    px, py = camera.apply(model, np.float64(cxw), np.float64(cyw))
    motion_px = max(0.0, camera_px + local_px)
    # Image y points down, so atan2(b, a) > 0 turns content clockwise on screen; report CCW.
    rotation = -math.degrees(math.atan2(model[1, 0], model[0, 0]))
    orig = camera.rescale(model, sx, sy)
    # Every number at the stored precision (schema.quantize) before anything compares it with
    # a threshold: static-pair and cut decisions are made on the values the dataset keeps.
    motion_px = quantize(motion_px)
    return MotionEstimate(
        motion_px=motion_px,
        motion_norm=quantize(motion_px / diagonal),
        camera_px=quantize(camera_px),
        local_px=quantize(local_px),
        pan_px=(quantize((px - cxw) * sx), quantize((py - cyw) * sy)),
        zoom=quantize(math.hypot(model[0, 0], model[1, 0])),
        rotation_deg=quantize(rotation),
        inlier_fraction=quantize(inliers),
        texture_fraction=quantize(texture_fraction),
        matched_fraction=quantize(matched),
        alignment=quantize(alignment),
        method=method,
        model=tuple(tuple(quantize(v) for v in row) for row in orig),  # type: ignore[arg-type]
        contrast_gain=quantize(gain),
        measurable=measurable,
    )


def _resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return img if (img.shape[1], img.shape[0]) == size else cv2.resize(img, size, interpolation=cv2.INTER_AREA)


# --------------------------------------------------------------------------- whole videos
@dataclass(frozen=True)
class VideoMotion:
    """Motion between consecutive sampled frames of one video. Pairs whose motion cannot be
    observed (no contrast) are listed in `unmeasurable` and carry no number."""

    times: list[tuple[float, float]]  # (t_a, t_b) of each measured pair, seconds
    magnitudes: list[float]  # mean motion per pair, original pixels
    norms: list[float]  # the same divided by the frame diagonal
    mean: float  # mean of `magnitudes`
    mean_norm: float
    width: int
    height: int
    unmeasurable: list[tuple[float, float]] = field(default_factory=list)  # (t_a, t_b) of pairs not measured


def score_video(
    path: str | Path,
    fps: float = 2.0,
    *,
    method: str = "dis",
    work_side: int = WORK_SIDE,
    raft_dir: str | Path | None = None,
    limits=None,
) -> VideoMotion:
    """Per-pair motion of frames sampled at `fps`; raises VideoRejected for unusable files, and
    as `unmeasurable_motion` when no pair's motion can be observed (a flat grey clip).

    Frames are decoded straight to working size (grey for DIS/Farneback), so no full-size
    RGB frame is ever made.
    """
    from datagen.video.decode import prefetched, read_frames, sample_times
    from datagen.video.probe import Limits, VideoRejected, probe

    limits = limits or Limits()
    info = probe(path, limits)
    size = work_size(info.width, info.height, work_side)
    duration = info.duration if info.duration > 0 else limits.max_duration_s
    times, mags, norms, unmeasurable = [], [], [], []
    frames = read_frames(info, sample_times(duration, fps), size=size, grey=method != "raft")
    with prefetched(frames) as stream:  # decode the next frame while scoring this pair
        n = _score_stream(stream, info, method, work_side, raft_dir, times, mags, norms, unmeasurable)
    if n < 2:
        raise VideoRejected("too_few_frames", f"{n} frame(s) at {fps} fps sampling")
    if not mags:
        raise VideoRejected("unmeasurable_motion", f"none of {n - 1} frame pairs has contrast enough to follow")
    mean = float(np.mean(mags))
    return VideoMotion(times, mags, norms, mean, mean / info.diagonal, info.width, info.height, unmeasurable)


def _score_stream(stream, info, method, work_side, raft_dir, times, mags, norms, unmeasurable) -> int:
    prev, n = None, 0
    for frame in stream:
        if prev is not None:
            est = estimate_motion(
                prev.pixels,
                frame.pixels,
                method=method,
                work_side=work_side,
                original_size=(info.width, info.height),
                raft_dir=raft_dir,
                with_alignment=False,
            )
            if not est.measurable:
                unmeasurable.append((prev.time, frame.time))
            else:
                times.append((prev.time, frame.time))
                mags.append(est.motion_px)
                norms.append(est.motion_norm)
        prev, n = frame, n + 1
    return n
