"""The keyframes of one video's shots: what storyboards are cut from, read in one streaming pass.

The same decoder, motion estimate and cut test as the frame-pair path (`process.py`), so a
storyboard's panels and a video's pairs agree on where the shots are.

Memory is bounded by design, not by the video's length: frames stream past and only what a
storyboard can use is held - per shot its candidate keyframe (the best-scoring sampled frame,
by default the sharpest, the storyboard's keyframe rule), and at most `max_shots` shots. A
video with more shots (a feature film, or a strobe with a cut at every sampled frame) keeps
an even spread of them: every shot while they fit, then every 2nd, 4th, ... shot, so the kept
shots cover the whole video in time order. Peak: (max_shots + 2) frames at the stored size
(32 shots at 512x288: ~15 MB), whatever the duration; the decoder itself holds a few frames.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datagen.portable import portable_cv
from datagen.scoring.quality import sharpness
from datagen.video.decode import read_frames, sample_times
from datagen.video.motion import estimate_motion, to_work, work_size
from datagen.video.probe import Limits, VideoInfo, probe
from datagen.video.shots import CutRule, colour_histogram, hist_distance, judge_cut

# Shots (one keyframe each) held per video. A storyboard uses at most 16 panels + 1
# reference, and picks its reference by comparing every pair of shots (~max_shots^2
# similarity calls: ~1000 at 32, a second or two; a film's 2000 shots would take hours).
MAX_SHOTS = 32


@dataclass
class ShotFrames:
    info: VideoInfo
    frames: list[np.ndarray] = field(default_factory=list)  # RGB at the stored size: one keyframe per kept shot
    times: list[float] = field(default_factory=list)  # seconds, the keyframes' real presentation times
    shot_ids: list[int] = field(default_factory=list)  # the shots' numbers in the whole video (gaps when thinned)
    shots: int = 0  # shots in the whole video
    sampled: int = 0  # frames sampled
    stride: int = 1  # every stride-th shot is kept (1 while they fit in max_shots)


def frames_with_shots(path: str | Path, fps: float = 2.0, max_side: int | None = 768,
                      limits: Limits = Limits(), cut: CutRule = CutRule(), *, max_shots: int = MAX_SHOTS,
                      score: Callable[[np.ndarray], float] = sharpness) -> ShotFrames:
    """Decode frames at `fps`, find the shots, keep each kept shot's best frame by `score`
    (the earliest on ties); raises VideoRejected for unusable files."""
    if max_shots < 1:
        raise ValueError(f"max_shots must be >= 1, got {max_shots}")
    with portable_cv():  # the cut test and the keyframe score decide on OpenCV float maths: baseline kernels
        return _frames_with_shots(path, fps, max_side, limits, cut, max_shots, score)


def _frames_with_shots(path, fps, max_side, limits, cut, max_shots, score) -> ShotFrames:
    info = probe(path, limits)
    long_side = max(info.width, info.height)
    s = min(1.0, (max_side or long_side) / long_side)
    size = (max(2, round(info.width * s)), max(2, round(info.height * s)))
    wsize = work_size(*size)
    duration = info.duration if info.duration > 0 else limits.max_duration_s
    out = ShotFrames(info)
    keep = _Keeper(out, max_shots)
    prev = None  # (work, hist) of the previous sampled frame
    best: tuple[float, float, np.ndarray] | None = None  # the current shot's candidate: (score, time, pixels)
    shot = 0
    for frame in read_frames(info, sample_times(duration, fps), size=size):
        work, hist = to_work(frame.pixels, wsize), colour_histogram(frame.pixels)
        if prev is not None:
            est = estimate_motion(prev[0], work, original_size=(info.width, info.height))
            if judge_cut(hist_distance(prev[1], hist), est, cut).is_cut:
                keep.close(shot, best)
                best, shot = None, shot + 1
        if keep.wants(shot):
            value = score(frame.pixels)
            if best is None or value > best[0]:
                best = (value, float(frame.time), frame.pixels)
        out.sampled += 1
        prev = (work, hist)
    if out.sampled:
        keep.close(shot, best)
    return out


class _Keeper:
    """At most `cap` shots, thinned to every 2nd, 4th, ... shot whenever one more arrives."""

    def __init__(self, out: ShotFrames, cap: int):
        self.out, self.cap = out, cap

    def wants(self, shot: int) -> bool:
        return shot % self.out.stride == 0

    def close(self, shot: int, best: tuple[float, float, np.ndarray] | None) -> None:
        o = self.out
        o.shots = shot + 1
        if best is None:
            return
        o.frames.append(best[2])
        o.times.append(best[1])
        o.shot_ids.append(shot)
        while len(o.shot_ids) > self.cap:
            o.stride *= 2
            keep = [i for i, k in enumerate(o.shot_ids) if k % o.stride == 0]
            o.frames[:] = [o.frames[i] for i in keep]
            o.times[:] = [o.times[i] for i in keep]
            o.shot_ids[:] = [o.shot_ids[i] for i in keep]
