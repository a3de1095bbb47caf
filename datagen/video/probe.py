"""What a video file is, read from its header and first frame, and the guards against bad ones.

`probe` either returns a `VideoInfo` or raises `VideoRejected(reason, detail)` with a stable
short reason code. Every size check runs on the header before any pixel is decoded, so an
8K or hour-long file costs nothing to refuse.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import av

from datagen import cpu_features
from datagen.params import ProductConfig, param
from datagen.rejection import Rejected

cpu_features.apply_av_cpu_flags()  # test hook: FFmpeg's SIMD pinned by env, before any codec opens


class VideoRejected(Rejected):
    """A video (or part of one) that cannot enter a dataset; `reason` is a stable short code."""



@dataclass(frozen=True)
class Limits(ProductConfig):
    """What a video may be, checked on its header before any pixel is decoded."""

    min_side: int = param(128, "Shorter side (upright) below which a video is too_small.", min=8, max=8192)
    max_pixels: int = param(4096 * 2160, "Pixels of one frame above which a video is too_large.", min=256,
                            max=8192 * 8192)
    max_bytes: int = param(8 * 1024**3, "File size above which a video is too_large.", min=1, max=64 * 1024**3)
    max_duration_s: float = param(4 * 3600.0, "Duration above which a video is too_long, seconds.", min=1.0,
                                  max=24 * 3600.0)


@dataclass(frozen=True)
class VideoInfo:
    path: str
    container: str
    codec: str
    width: int  # upright, after the display rotation
    height: int
    rotation: int  # degrees counter-clockwise applied to decoded frames: 0, 90, 180, 270
    fps: float  # average rate; 0 when the container does not say
    duration: float  # seconds; 0 when unknown
    frames: int  # declared frame count; 0 when unknown
    size_bytes: int
    start_time: float  # first presentation time, seconds

    @property
    def diagonal(self) -> float:
        return float((self.width**2 + self.height**2) ** 0.5)

    def as_meta(self) -> dict:
        return {
            "container": self.container,
            "codec": self.codec,
            "width": self.width,
            "height": self.height,
            "rotation": self.rotation,
            "fps": round(self.fps, 4),
            "duration": round(self.duration, 4),
        }


def content_hash(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return "sha256:" + h.hexdigest()


def probe(path: str | Path, limits: Limits = Limits()) -> VideoInfo:
    """Header facts and one decoded frame (to learn the rotation and prove the stream decodes)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise VideoRejected("unreadable", str(exc)) from exc
    if size == 0:
        raise VideoRejected("empty_file", "zero bytes")
    if size > limits.max_bytes:
        raise VideoRejected("too_large", f"{size} bytes exceeds {limits.max_bytes}")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        if _has_video_signature(path):  # a known container whose structure is broken
            raise VideoRejected("corrupt_video", f"container does not open: {exc}") from exc
        raise VideoRejected("not_a_video", f"no container format recognised: {exc}") from exc
    with container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise VideoRejected("no_video_stream", f"{container.format.name} holds {', '.join(kinds)}")
        stream = container.streams.video[0]
        cc = stream.codec_context
        w, h = int(cc.width or 0), int(cc.height or 0)
        if w <= 0 or h <= 0:
            raise VideoRejected("corrupt_video", f"video stream has no frame size ({w}x{h})")
        if w * h > limits.max_pixels:
            raise VideoRejected("too_large", f"{w}x{h} exceeds {limits.max_pixels} pixels per frame")
        tb = float(stream.time_base) if stream.time_base else 0.0
        duration = 0.0
        if stream.duration and tb:
            duration = stream.duration * tb
        elif container.duration:
            duration = container.duration / av.time_base
        if duration > limits.max_duration_s:
            raise VideoRejected("too_long", f"{duration:.0f} s exceeds {limits.max_duration_s:.0f} s")
        start = stream.start_time * tb if stream.start_time is not None and tb else 0.0
        rate = stream.average_rate or stream.guessed_rate
        rotation = _first_frame_rotation(container, stream)
        if rotation in (90, 270):
            w, h = h, w
        if min(w, h) < limits.min_side:
            raise VideoRejected("too_small", f"{w}x{h} is below {limits.min_side} px on the short side")
        return VideoInfo(
            path=str(path),
            container=container.format.name,
            codec=cc.name,
            width=w,
            height=h,
            rotation=rotation,
            fps=float(rate) if rate else 0.0,
            duration=float(duration),
            frames=int(stream.frames or 0),
            size_bytes=size,
            start_time=float(start),
        )


# Leading bytes of common video containers: (offset, magic).
_SIGNATURES = ((4, b"ftyp"), (4, b"moov"), (4, b"mdat"), (0, b"\x1a\x45\xdf\xa3"), (0, b"RIFF"), (0, b"FLV"),
               (0, b"\x00\x00\x01\xba"), (0, b"GIF8"), (0, b"OggS"))  # fmt: skip


def _has_video_signature(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(16)
    return any(head[o : o + len(m)] == m for o, m in _SIGNATURES)


def _first_frame_rotation(container, stream) -> int:
    try:
        for frame in container.decode(stream):
            return int(round(frame.rotation / 90.0)) % 4 * 90
    except av.error.FFmpegError as exc:
        raise VideoRejected("corrupt_video", f"first frame does not decode: {exc}") from exc
    raise VideoRejected("too_few_frames", "the video stream holds no decodable frame")
