"""Short clips with known camera motion, made offline from scikit-image's photos.

A virtual camera looks at a large photo mosaic (the "canvas"); its pose per frame is a
similarity (centre, zoom, roll), so the true motion of every pixel between any two frames is
known exactly. The demo flow and the tests use these clips; `make_demo_clips` writes a small
set (pan, zoom, roll, a cut, a near-static clip, scikit-image's GIF).
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from datagen import cpu_features
from datagen.images import warp_affine
from datagen.portable import portable_cv
from datagen.video.decode import EXACT_SCALE

cpu_features.apply_av_cpu_flags()  # test hook: FFmpeg's SIMD pinned by env, before any codec opens

# MPEG-4 Part 2 with the same bytes on every CPU: integer DCT, simple IDCT, no inexact DSP.
MPEG4_EXACT = {"flags": "+bitexact", "dct": "int", "idct": "simple"}

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "stereo_motorcycle")


@dataclass(frozen=True)
class Pose:
    """Where the camera looks: canvas point at the frame centre, canvas px per frame px, roll."""

    cx: float
    cy: float
    scale: float = 1.0
    angle_deg: float = 0.0


def frame_to_canvas(pose: Pose, size: tuple[int, int]) -> np.ndarray:
    """2x3 affine mapping frame pixel (x, y) to canvas coordinates; size is (width, height)."""
    w, h = size
    t = math.radians(pose.angle_deg)
    c, s = math.cos(t) * pose.scale, math.sin(t) * pose.scale
    fx, fy = (w - 1) / 2.0, (h - 1) / 2.0
    return np.array([[c, -s, pose.cx - (c * fx - s * fy)], [s, c, pose.cy - (s * fx + c * fy)]], np.float64)


def render(canvas: np.ndarray, pose: Pose, size: tuple[int, int]) -> np.ndarray:
    """The frame the camera sees (bicubic resampling of the canvas at the pose)."""
    m = frame_to_canvas(pose, size)
    return warp_affine(canvas, m, size, inverse=True, interpolation="cubic", border=cv2.BORDER_REFLECT101)


def true_flow_mean(pose_a: Pose, pose_b: Pose, size: tuple[int, int]) -> float:
    """Mean length, in frame pixels, of the displacement of every pixel of frame A into frame B."""
    w, h = size
    a = np.vstack([frame_to_canvas(pose_a, size), [0, 0, 1]])
    b = np.vstack([frame_to_canvas(pose_b, size), [0, 0, 1]])
    a_to_b = np.linalg.inv(b) @ a
    # Every other pixel centre: the field is affine, so this mean equals the full one to ~1e-4.
    xs, ys = np.meshgrid(np.arange(0.5, w, 2.0), np.arange(0.5, h, 2.0))
    pts = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    moved = a_to_b @ pts
    return float(np.hypot(moved[0] - pts[0], moved[1] - pts[1]).mean())


# --------------------------------------------------------------------------- canvases
def photo(name: str) -> np.ndarray:
    import skimage.data

    img = getattr(skimage.data, name)()
    if isinstance(img, tuple):  # stereo_motorcycle -> (left, right, disparity)
        img = img[0]
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def mosaic(height: int, width: int, names: tuple[str, ...] = PHOTOS, tile: int = 512) -> np.ndarray:
    """A canvas tiled with real photos (each cropped square and resized to `tile`)."""
    tiles = []
    for name in names:
        img = photo(name)
        s = min(img.shape[:2])
        y0, x0 = (img.shape[0] - s) // 2, (img.shape[1] - s) // 2
        tiles.append(cv2.resize(img[y0 : y0 + s, x0 : x0 + s], (tile, tile), interpolation=cv2.INTER_AREA))
    rows, cols = -(-height // tile), -(-width // tile)
    out = np.zeros((rows * tile, cols * tile, 3), np.uint8)
    for r in range(rows):
        for c in range(cols):
            out[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = tiles[(r * cols + c + r) % len(tiles)]
    return out[:height, :width]


def sky_canvas(height: int, width: int, sky_fraction: float = 0.65) -> np.ndarray:
    """A smooth sky gradient over a textured ground: flow is unobservable in most of the frame."""
    ground = mosaic(height, width)
    ys = np.linspace(0.0, 1.0, height)[:, None, None]
    top, horizon = np.array([70, 120, 200.0]), np.array([180, 205, 235.0])
    sky = (top + (horizon - top) * ys).repeat(width, axis=1)
    out = ground.copy()
    cut = int(height * sky_fraction)
    out[:cut] = sky[:cut].round().astype(np.uint8)
    return out


def low_contrast(rgb: np.ndarray, grey_std: float = 8.0) -> np.ndarray:
    """The picture squeezed towards its mean colour until its grey levels have a standard
    deviation of `grey_std` (haze, fog, a flat grade): the case motion must still read."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float64)
    mean = rgb.reshape(-1, 3).mean(axis=0)
    return np.clip(np.round(mean + (rgb - mean) * (grey_std / grey.std())), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- writing
def write_video(
    path: str | Path,
    frames,
    fps: float | Fraction = 25,
    codec: str = "libx264",
    *,
    bit_rate: int | None = None,
    crf: int = 20,
    rotation: int = 0,
    times: list[float] | None = None,
    movflags: str | None = None,
    gop: int | None = None,
) -> Path:
    """Encode RGB uint8 frames with PyAV. `times` gives explicit (variable) frame times;
    `rotation` stores a display matrix (counter-clockwise degrees a player applies)."""
    path = Path(path)
    frames = iter(frames)
    first = next(frames)
    h, w = first.shape[:2]
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w", options={"movflags": movflags} if movflags else None) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        if gop:
            stream.codec_context.gop_size = gop
        if codec == "libx264":
            # x264 picks algorithms by CPU (its AVX2 kernels round unlike SSE2/C) and threads by
            # core count unless told otherwise; both change the bitstream.
            params = ":".join(["cpu-independent=1", "threads=1", *cpu_features.x264_test_params()])
            stream.options = {"crf": str(crf), "preset": "veryfast", "x264-params": params}
        elif bit_rate:
            stream.bit_rate = bit_rate
        if codec == "mpeg4":
            # FFmpeg picks its forward DCT by CPU (SSE2 AP922 vs C) unless told otherwise, and
            # slice threads (one per core by default) change the bitstream.
            stream.options = {**stream.options, **MPEG4_EXACT}
            stream.codec_context.thread_count = 1
        if times is not None:
            stream.time_base = Fraction(1, 1000)
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        for k, img in enumerate(_chain(first, frames)):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            # Convert here with swscale's bit-exact flags; left to the encoder, RGB -> YUV takes
            # SIMD paths whose rounding differs per CPU, and so would the file's bytes.
            frame = frame.reformat(format=stream.pix_fmt, interpolation=EXACT_SCALE)
            if times is not None:
                frame.pts = int(round(times[k] * 1000))
                frame.time_base = Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _chain(first, rest):
    yield first
    yield from rest


def camera_clip(
    path: str | Path,
    canvas: np.ndarray,
    poses: list[Pose],
    size: tuple[int, int],
    fps: float = 25,
    codec: str = "libx264",
    **kw,
) -> Path:
    return write_video(path, (render(canvas, p, size) for p in poses), fps, codec, **kw)


def glide(start: Pose, end: Pose, n: int) -> list[Pose]:
    """Poses moving at constant speed from start to end (zoom interpolated geometrically)."""
    out = []
    for k in range(n):
        t = k / max(n - 1, 1)
        out.append(
            Pose(
                start.cx + (end.cx - start.cx) * t,
                start.cy + (end.cy - start.cy) * t,
                start.scale * (end.scale / start.scale) ** t,
                start.angle_deg + (end.angle_deg - start.angle_deg) * t,
            )
        )
    return out


# --------------------------------------------------------------------------- demo set
def make_demo_clips(out_dir: str | Path, seed: int = 0) -> list[Path]:
    """Write a handful of 5 s, 320x180 clips with known camera motion; returns their paths.

    pan, zoom, roll, a clip with two cuts between different photos, a near-static clip, and
    scikit-image's bundled GIF copied as it is (PyAV reads GIF directly; at 14x25 px it
    is refused as too_small, which the demo shows as a reject). The files' bytes are the same
    on any CPU: OpenCV on its baseline kernels (its bicubic resize goes through IPP otherwise,
    which rounds per CPU), exact warps, bit-exact RGB -> YUV.
    """
    with portable_cv():
        return _make_demo_clips(Path(out_dir), seed)


def _make_demo_clips(out_dir: Path, seed: int) -> list[Path]:
    import skimage

    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    size, fps, n = (320, 180), 25, 125

    def big(name: str, factor: float = 2.0) -> np.ndarray:
        img = photo(name)
        return cv2.resize(img, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)

    def u(lo: float, hi: float) -> float:
        return float(rng.uniform(lo, hi))

    paths = []
    moto = big("stereo_motorcycle")  # 1482x1000
    y = u(420, 580)
    paths.append(camera_clip(out_dir / "pan.mp4", moto, glide(Pose(u(380, 460), y, 2.4), Pose(u(1020, 1100), y + u(-40, 40), 2.4), n), size, fps))
    astro = big("astronaut")  # 1024x1024
    cx, cy = u(480, 540), u(380, 460)
    paths.append(camera_clip(out_dir / "zoom.mp4", astro, glide(Pose(cx, cy, 2.6), Pose(cx, cy, 1.2), n), size, fps))
    coffee = big("coffee")  # 1200x800
    paths.append(camera_clip(out_dir / "roll.mp4", coffee, glide(Pose(600, 400, 2.2, 0.0), Pose(600, 400, 2.2, u(20, 30)), n), size, fps))

    # Three 2 s shots of different photos, each with its own camera move, joined by hard cuts.
    shots = []
    for k, name in enumerate(("astronaut", "coffee", "rocket")):
        img = cv2.resize(photo(name), (640, 480), interpolation=cv2.INTER_CUBIC)
        d = 60.0 if k % 2 == 0 else -60.0
        shots += [render(img, p, size) for p in glide(Pose(320 - d, 240, 1.0), Pose(320 + d, 240 + d / 3, 1.0), 50)]
    paths.append(write_video(out_dir / "cuts.mp4", shots, fps))

    rocket = big("rocket")  # 1280x854
    x0, y0 = u(560, 720), u(360, 480)
    paths.append(camera_clip(out_dir / "static.mp4", rocket, glide(Pose(x0, y0, 2.0), Pose(x0 + 0.8, y0, 2.0), n), size, fps))

    gif = Path(skimage.__file__).parent / "data" / "no_time_for_that_tiny.gif"
    paths.append(Path(shutil.copyfile(gif, out_dir / "no_time_for_that.gif")))
    return paths
