"""Sampled frames of one video with their shot ids: what storyboards are cut from.

The same decoder, motion estimate and cut test as the frame-pair path (`process.py`), so a
storyboard's panels and a video's pairs agree on where the shots are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datagen.portable import portable_cv
from datagen.video.decode import read_frames, sample_times
from datagen.video.motion import estimate_motion, to_work, work_size
from datagen.video.probe import Limits, VideoInfo, probe
from datagen.video.shots import CutRule, colour_histogram, hist_distance, judge_cut


@dataclass
class ShotFrames:
    info: VideoInfo
    frames: list[np.ndarray]  # RGB at the stored size
    times: list[float]  # seconds, the frames' real presentation times
    shot_ids: list[int]


def frames_with_shots(path: str | Path, fps: float = 2.0, max_side: int | None = 768,
                      limits: Limits = Limits(), cut: CutRule = CutRule()) -> ShotFrames:
    """Decode frames at `fps` and number the shots; raises VideoRejected for unusable files."""
    with portable_cv():  # the cut test decides on OpenCV float maths: baseline kernels
        return _frames_with_shots(path, fps, max_side, limits, cut)


def _frames_with_shots(path, fps, max_side, limits, cut) -> ShotFrames:
    info = probe(path, limits)
    long_side = max(info.width, info.height)
    s = min(1.0, (max_side or long_side) / long_side)
    size = (max(2, round(info.width * s)), max(2, round(info.height * s)))
    wsize = work_size(*size)
    duration = info.duration if info.duration > 0 else limits.max_duration_s
    out = ShotFrames(info, [], [], [])
    prev = None  # (work, hist)
    shot = 0
    for frame in read_frames(info, sample_times(duration, fps), size=size):
        work, hist = to_work(frame.pixels, wsize), colour_histogram(frame.pixels)
        if prev is not None:
            est = estimate_motion(prev[0], work, original_size=(info.width, info.height))
            shot += int(judge_cut(hist_distance(prev[1], hist), est, cut).is_cut)
        out.frames.append(frame.pixels)
        out.times.append(float(frame.time))
        out.shot_ids.append(shot)
        prev = (work, hist)
    return out
