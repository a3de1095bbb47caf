"""Writers of test videos: known motion, real cuts, and every kind of bad input.

Each helper writes a real file with PyAV (H.264 via libx264, MPEG-4 Part 2 via mpeg4) and
returns its path plus the ground truth the tests compare against. Clips are small and
short so the whole video suite stays fast on two shared cores.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np

from datagen.video import synthetic as S

SIZES = {"360p": (640, 360), "720p": (1280, 720)}
# Shifts (px) between consecutive frames of the accuracy clips: 0 to 40, incl. sub-pixel.
SHIFTS = [0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 33.5, 40.0]
CODECS = {"h264": "libx264", "mpeg4": "mpeg4"}

_canvases: dict[str, np.ndarray] = {}


SKY_HORIZON = int(1536 * 0.65)  # canvas row where the sky canvas' ground starts


def sky_centre(height: int, ground: float = 0.3) -> float:
    """Camera centre row that leaves `ground` of a frame of this height below the horizon."""
    return SKY_HORIZON - (1.0 - ground) * height + height / 2


def canvas(kind: str = "photos") -> np.ndarray:
    """2048x1536 photo mosaic, the same with a flat sky over the top 65% ("sky"), or the
    mosaic with its contrast cut to a grey-level standard deviation of 8 ("low_contrast")."""
    if kind not in _canvases:
        if kind == "low_contrast":
            _canvases[kind] = S.low_contrast(canvas("photos"))
        else:
            _canvases[kind] = S.mosaic(1536, 2048) if kind == "photos" else S.sky_canvas(1536, 2048)
    return _canvases[kind]




def write(path: Path, frames: list[np.ndarray], fps: float, codec: str = "h264", **kw) -> Path:
    name = CODECS.get(codec, codec)
    rate = kw.pop("bit_rate", None)
    if name == "mpeg4" and rate is None:
        # mpeg4's default 200 kb/s turns 720p into mush; 8 bits/px/s is an ordinary quality.
        rate = int(frames[0].shape[0] * frames[0].shape[1] * fps * 8)
    return S.write_video(path, frames, fps, name, bit_rate=rate, **kw)


def pose_clip(path: Path, poses: list[S.Pose], size: tuple[int, int], fps: float = 2.0, codec: str = "h264",
              kind: str = "photos") -> tuple[Path, list[float]]:  # fmt: skip
    """Clip of the canvas seen from `poses`; returns it and the true mean motion of each
    consecutive pair of frames (pixels of this clip)."""
    frames = [S.render(canvas(kind), p, size) for p in poses]
    truth = [S.true_flow_mean(a, b, size) for a, b in zip(poses, poses[1:])]
    return write(path, frames, fps, codec), truth


def shift_ladder(path: Path, size: tuple[int, int], codec: str = "h264", shifts=SHIFTS, kind: str = "photos",
                 cy: float = 768.0):  # fmt: skip
    """Consecutive frames shifted by exactly `shifts` px, in changing directions."""
    poses = [S.Pose(1024.0, cy)]
    for k, d in enumerate(shifts):
        angle = np.radians(37.0 * k)  # a new direction each step, so errors cannot cancel
        sign = 1 if k % 2 == 0 else -1  # back and forth: stays near the canvas centre
        p = poses[-1]
        poses.append(S.Pose(p.cx + sign * d * np.cos(angle), p.cy + sign * d * np.sin(angle)))
    return pose_clip(path, poses, size, 2.0, codec, kind)


def low_contrast_clip(path: Path, size: tuple[int, int]):
    """The issue's case on a low-contrast photo: an 8 px pan, a 3% zoom, a 2 degree roll, and
    a still pair, between consecutive frames."""
    c = S.Pose(1024.0, 768.0)
    poses = [c, S.Pose(c.cx + 8, c.cy), S.Pose(c.cx + 8, c.cy, 1.03), S.Pose(c.cx + 8, c.cy, 1.03, 2.0),
             S.Pose(c.cx + 8, c.cy, 1.03, 2.0)]  # fmt: skip
    return pose_clip(path, poses, size, 2.0, kind="low_contrast")


def flat_grey(path: Path, size=(320, 180), fps: float = 2.0, seconds: float = 3.0, level: int = 128) -> Path:
    """Nothing but mid-grey: no motion can be observed, whatever the camera did."""
    frame = np.full((size[1], size[0], 3), level, np.uint8)
    return write(path, [frame] * int(fps * seconds), fps)


def zoom_roll_clip(path: Path, size: tuple[int, int], codec: str = "h264"):
    """Zoom in, zoom out, roll both ways, and a zoom+roll+pan, between consecutive frames."""
    c = S.Pose(1024.0, 768.0)
    poses = [c, S.Pose(c.cx, c.cy, 0.96), S.Pose(c.cx, c.cy, 1.02), S.Pose(c.cx, c.cy, 1.02, 2.5),
             S.Pose(c.cx, c.cy, 1.02, -1.0), S.Pose(c.cx + 12, c.cy - 6, 0.97, 1.5)]  # fmt: skip
    return pose_clip(path, poses, size, 2.0, codec)


def cut_clip(path: Path, size=(480, 270), fps: float = 25.0, shot_s: float = 2.0):
    """Four shots of different scikit-image photos, each with its own camera move, joined
    by hard cuts; returns the path and the true cut times (seconds)."""
    names = ("astronaut", "coffee", "rocket", "stereo_motorcycle")
    n = int(round(shot_s * fps))
    frames = []
    for k, name in enumerate(names):
        img = cv2.resize(S.photo(name), (960, 720), interpolation=cv2.INTER_CUBIC)
        d = 90.0 if k % 2 == 0 else -90.0
        start, end = S.Pose(480 - d, 360, 1.3), S.Pose(480 + d, 360 + d / 4, 1.1, 3.0 * (k - 1.5))
        frames += [S.render(img, p, size) for p in S.glide(start, end, n)]
    cuts = [k * n / fps for k in range(1, len(names))]
    return write(path, frames, fps), cuts


# --------------------------------------------------------------------------- bad inputs
def zero_byte(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def not_a_video(path: Path) -> Path:
    path.write_text("this is a text file with a video's name\n" * 20)
    return path


def truncated(path: Path, keep: float = 0.5, faststart: bool = False) -> Path:
    """A valid clip cut off at `keep` of its bytes. Without faststart the index (moov) sits
    at the end and is lost; with it, the index survives and the frames run out early."""
    full = path.with_suffix(".full.mp4")
    frames = [S.render(canvas(), S.Pose(1024.0 + 8 * k, 768.0), (320, 180)) for k in range(50)]
    S.write_video(full, frames, 25, "libx264", crf=18, movflags="faststart" if faststart else None)
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def audio_only(path: Path, seconds: float = 1.0) -> Path:
    rate = 16000
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=rate)
        t = np.arange(int(rate * seconds)) / rate
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        for k in range(0, samples.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(samples[:, k : k + 1024], format="fltp", layout="mono")
            frame.sample_rate = rate
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def one_frame(path: Path) -> Path:
    return S.write_video(path, [S.render(canvas(), S.Pose(1024.0, 768.0), (320, 180))], 25, "libx264")


def variable_rate(path: Path, size=(320, 180), speed_px_s: float = 60.0):
    """Frames at irregular times (10-120 ms apart); content pans at a constant speed in px
    per second, so the truth between any two frames follows from their real times."""
    rng = np.random.default_rng(5)
    times = np.concatenate([[0.0], np.cumsum(rng.choice([0.01, 0.03, 0.04, 0.08, 0.12], size=89))])
    poses = [S.Pose(1024.0 + speed_px_s * t, 768.0) for t in times]
    frames = [S.render(canvas(), p, size) for p in poses]
    S.write_video(path, frames, 25, "libx264", times=list(times))
    return path, times, speed_px_s


def rotated(path: Path, rotation: int = 90) -> tuple[Path, np.ndarray]:
    """A portrait scene stored as landscape frames plus a display matrix, as phones do.
    Returns the path and the upright first frame a player would show."""
    upright = [S.render(canvas(), S.Pose(1024.0 + 6 * k, 768.0), (180, 320)) for k in range(40)]
    stored = [np.ascontiguousarray(np.rot90(f, -rotation // 90)) for f in upright]
    S.write_video(path, stored, 25, "libx264", crf=16, rotation=rotation)
    return path, upright[0]


def huge_header(path: Path, width: int = 8192, height: int = 8192) -> Path:
    """A few hundred bytes whose header claims 8192x8192 frames (a video bomb)."""
    header = f"YUV4MPEG2 W{width} H{height} F25:1 Ip A1:1 C420jpeg\n".encode()
    path.write_bytes(header + b"FRAME\n" + bytes(256))
    return path


def looping(path: Path, size=(320, 180), fps: float = 10.0) -> Path:
    """The same 1 s camera move played four times: later pairs repeat earlier ones."""
    base = [S.render(canvas(), S.Pose(1024.0 + 12 * k, 768.0), size) for k in range(int(fps))]
    return write(path, base * 4, fps)


def solid(path: Path, value: int, size=(320, 180), fps: float = 10.0, seconds: float = 3.0) -> Path:
    """A black (0) or white (255) clip with faint moving texture (codec-proof)."""
    frames = []
    for k in range(int(fps * seconds)):
        f = S.render(canvas(), S.Pose(1024.0 + 20 * k, 768.0), size).astype(np.int16)
        f = value + (f - 128) // 32 if value < 128 else value - (255 - f) // 32
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
    return write(path, frames, fps)


def blurry(path: Path, size=(320, 180), fps: float = 10.0, seconds: float = 3.0, sigma: float = 4.0) -> Path:
    frames = [cv2.GaussianBlur(S.render(canvas(), S.Pose(1024.0 + 20 * k, 768.0), size), (0, 0), sigma)
              for k in range(int(fps * seconds))]  # fmt: skip
    return write(path, frames, fps)


# --------------------------------------------------------------------------- long and cut-heavy
def _shot_frames(k: int, n: int, size: tuple[int, int]):
    """Shot k: a slow pan over its own photo (consecutive shots never share a photo), graded
    so that every shot also differs in colour."""
    name = S.PHOTOS[k % len(S.PHOTOS)]
    if name not in _canvases:
        _canvases[name] = cv2.resize(S.photo(name), (384, 384), interpolation=cv2.INTER_AREA)
    img = _canvases[name]
    grade = np.float32([0.7 + 0.3 * ((k * 3) % 5) / 4, 0.7 + 0.3 * ((k * 7) % 5) / 4, 0.7 + 0.3 * ((k * 11) % 5) / 4])
    img = np.clip(img * grade, 0, 255).astype(np.uint8)
    h, w = img.shape[:2]
    scale = 0.5 + 0.3 * ((k // len(S.PHOTOS)) % 4) / 3
    start = S.Pose(w / 2 - 20, h / 2, scale * max(w / size[0], h / size[1]) * 0.6)
    end = S.Pose(w / 2 + 20, h / 2 + 8, start.scale)
    return (S.render(img, p, size) for p in S.glide(start, end, n))


def many_shots(path: Path, shots: int, frames_per_shot: int = 3, size=(176, 128), fps: float = 2.0) -> Path:
    """A long edit: `shots` shots of `frames_per_shot` frames each, hard cuts between them."""
    return write(path, (f for k in range(shots) for f in _shot_frames(k, frames_per_shot, size)), fps)


def strobe(path: Path, frames: int, size=(176, 128), fps: float = 2.0) -> Path:
    """A cut at every frame: each frame shows another photo, in another colour."""
    return many_shots(path, frames, 1, size, fps)
