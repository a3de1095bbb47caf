"""Decode only the frames we sample, upright, at the size we ask for.

A 10 s clip sampled at 2 fps needs 20 of its 250 frames. Three things keep the rest cheap:
- frames we do not keep are never converted (no YUV->RGB, no copy to numpy);
- non-reference frames (most B-frames) far from any sampled time are not decoded at all
  (`skip_frame=NONREF` switched per packet: nothing else depends on them, so the frames we
  keep are bit-identical to a full decode);
- when the container's index shows a keyframe between where we are and the next sampled
  time, we seek to it instead of decoding through the gap.
The display matrix (phone videos shot upright store landscape frames plus a rotation) is
applied, so frames come out the way a player shows them.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Iterator, Sequence

import av
import numpy as np
from av.video.reformatter import Interpolation

from datagen import cpu_features
from datagen.video.probe import VideoInfo, VideoRejected

cpu_features.apply_av_cpu_flags()  # test hook: FFmpeg's SIMD pinned by env, before any codec opens

# swscale (scaling and YUV -> RGB) rounds differently on different CPUs unless asked for
# bit-exact arithmetic; with these flags its output is the same on every CPU (AREA: box
# averaging, the right filter for the downscales we ask of it). Measured cost: see the
# "Same bytes on any CPU" benchmark.
EXACT_SCALE = Interpolation.AREA | Interpolation.BITEXACT | Interpolation.ACCURATE_RND

# Decoders whose non-reference frames can be skipped without touching any other frame.
SKIPPABLE = {"h264", "hevc", "mpeg4", "mpeg2video", "mpeg1video", "msmpeg4v3", "h263", "vc1", "wmv3"}
# Seek only when the next sampled time is at least this far past the last decoded frame.
SEEK_MIN_GAP_S = 1.0
MAX_BAD_PACKETS = 8


@dataclass
class Frame:
    index: int  # position in the list of requested times
    time: float  # presentation time of the decoded frame, seconds from the stream start
    pixels: np.ndarray  # HxWx3 RGB, or HxW grey, uint8, upright


def sample_times(duration: float, fps: float, start: float = 0.0) -> list[float]:
    """Times at `fps` from `start` up to `duration` (one time for a clip shorter than a step)."""
    if fps <= 0:
        raise ValueError(f"sampling fps must be > 0, got {fps}")
    n = max(1, int(np.floor((duration - start) * fps + 1e-6)) + 1) if duration > 0 else 1
    return [start + k / fps for k in range(n)]


def read_frames(
    info: VideoInfo,
    times: Sequence[float],
    *,
    size: tuple[int, int] | None = None,
    grey: bool = False,
    skip_nonref: bool = True,
    seek: bool = True,
    stats: dict | None = None,
) -> Iterator[Frame]:
    """Yield, for each requested time in order, the first frame shown at or after it.

    `size` is the upright (width, height) to scale to (default: the video's own). Raises
    VideoRejected("corrupt_video" | "truncated") when the stream breaks or ends early.
    `stats`, if given, receives counts: packets, decoded, skipped_packets, seeks, emitted.
    """
    targets = sorted(float(t) for t in times)
    if not targets:
        return
    rot_k = info.rotation // 90
    out_w, out_h = size or (info.width, info.height)
    # swscale works on the stored (unrotated) frame.
    coded = (out_h, out_w) if rot_k % 2 else (out_w, out_h)
    fmt = "gray" if grey else "rgb24"
    frame_dt = 1.0 / info.fps if info.fps > 0 else 1.0 / 25
    half = frame_dt / 2
    try:
        container = av.open(info.path, metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise VideoRejected("corrupt_video", f"cannot reopen: {exc}") from exc
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        cc = stream.codec_context
        tb = float(stream.time_base)
        start_pts = stream.start_time or 0
        can_skip = skip_nonref and cc.name in SKIPPABLE
        keyframes = _keyframe_times(stream, tb, start_pts) if seek else []
        k, last_t, bad = 0, -1.0, 0
        position = -1.0  # stream time we have decoded or seeked up to; seeks only go forward
        count = {"packets": 0, "decoded": 0, "skipped_packets": 0, "seeks": 0, "emitted": 0}
        if stats is not None:
            stats.update(count)
            count = stats
        for packet in container.demux(stream):
            count["packets"] += 1
            if can_skip:
                needed = packet.pts is None or _near(targets, k, (packet.pts - start_pts) * tb, frame_dt)
                cc.skip_frame = "DEFAULT" if needed else "NONREF"
                count["skipped_packets"] += not needed
            try:
                decoded = packet.decode()
            except av.error.FFmpegError as exc:
                bad += 1
                if bad > MAX_BAD_PACKETS:
                    raise VideoRejected("corrupt_video", f"{bad} packets fail to decode, last: {exc}") from exc
                continue
            for frame in decoded:
                count["decoded"] += 1
                t = (frame.pts - start_pts) * tb if frame.pts is not None else last_t + frame_dt
                last_t = t
                position = max(position, t)
                if k >= len(targets) or t < targets[k] - half:
                    continue
                pixels = _convert(frame, coded, fmt, rot_k)
                count["emitted"] += 1
                yield Frame(k, float(t), pixels)
                # Targets closer together than the frame spacing share this frame.
                while k < len(targets) and targets[k] - half <= t:
                    k += 1
            if k >= len(targets):
                break
            if keyframes and targets[k] - position > SEEK_MIN_GAP_S:
                landed = _seek_if_worth_it(container, stream, keyframes, position, targets[k] - frame_dt, tb, start_pts)
                if landed is not None:
                    position = landed
                    cc.skip_frame = "DEFAULT"
                    count["seeks"] += 1
        if k < len(targets) and info.duration > 0:
            # The stream ended before the time the header promised.
            if last_t < info.duration - max(1.0, 0.1 * info.duration) - info.start_time:
                raise VideoRejected(
                    "truncated", f"frames stop at {last_t:.2f} s of a declared {info.duration:.2f} s"
                )


def _near(targets: list[float], k: int, t: float, frame_dt: float) -> bool:
    # Decode order differs from display order (B-frames), so look at all remaining targets.
    i = bisect.bisect_left(targets, t - 1.5 * frame_dt, lo=k)
    return i < len(targets) and targets[i] <= t + 1.5 * frame_dt


def _keyframe_times(stream, tb: float, start_pts: int) -> list[float]:
    try:
        entries = stream.index_entries
        return sorted((e.timestamp - start_pts) * tb for e in entries if e.is_keyframe)
    except (AttributeError, av.error.FFmpegError):
        return []


def _seek_if_worth_it(container, stream, keyframes, position, target, tb, start_pts) -> float | None:
    """Seek to the last keyframe before `target` if it lies past `position`; its time, or None."""
    i = bisect.bisect_right(keyframes, target) - 1
    if i < 0 or keyframes[i] <= position + 1e-6:
        return None
    container.seek(int(round(keyframes[i] / tb)) + start_pts, stream=stream, backward=True, any_frame=False)
    return keyframes[i]


def _convert(frame, coded: tuple[int, int], fmt: str, rot_k: int) -> np.ndarray:
    w, h = coded
    arr = frame.to_ndarray(format=fmt, width=w, height=h, interpolation=EXACT_SCALE)
    if rot_k:
        arr = np.ascontiguousarray(np.rot90(arr, rot_k))
    return arr


# --------------------------------------------------------------------------- overlap
_DONE = object()


class prefetched:
    """Iterate `source` on a background thread, `depth` items ahead.

    PyAV and OpenCV release the GIL while they work, so decoding the next sampled frame
    overlaps with the motion work on the current one. Exceptions (VideoRejected, ...) are
    re-raised in the consumer; leaving the `with` block early stops the thread and closes
    the source, so no decoder or file stays open.
    """

    def __init__(self, source: Iterator, depth: int = 4):
        import queue
        import threading

        self._source = source
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="video-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        import queue

        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._source:
                if not self._put((item, None)):
                    break
            self._put((_DONE, None))
        except BaseException as exc:  # handed to the consumer, not lost in the thread
            self._put((_DONE, exc))
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()

    def __iter__(self):
        while True:
            item, exc = self._queue.get()
            if item is _DONE:
                if exc is not None:
                    raise exc
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
