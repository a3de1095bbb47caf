"""Video frame-pair data (iMontage): decode sampled frames, find shots, score motion,
filter, and turn one video into `video.pair` / `video.transition` / `video.recut` samples.

The product (config, plan, item function) is declared in `datagen.video.product`.

Entry points:
    process_video(path, config, rng) -> (samples, rejects)   # datagen.video.process
    list_videos(root) -> [VideoFile]                          # datagen.video.sources
    flow_magnitude(frame_a, frame_b, method="dis") -> float   # datagen.video.motion
    score_video(path, fps=2.0) -> VideoMotion                 # datagen.video.motion
    make_demo_clips(out_dir, seed) -> [paths]                 # datagen.video.synthetic
"""

from datagen.video.config import VideoPairsConfig
from datagen.video.motion import (
    MotionEstimate,
    VideoMotion,
    estimate_motion,
    flow_magnitude,
    score_video,
)
from datagen.video.probe import Limits, VideoInfo, VideoRejected, probe
from datagen.video.process import GENERATOR, TASK_PAIR, TASK_RECUT, TASK_TRANSITION, process_video
from datagen.video.synthetic import make_demo_clips

__all__ = [
    "GENERATOR",
    "TASK_PAIR",
    "TASK_RECUT",
    "TASK_TRANSITION",
    "Limits",
    "MotionEstimate",
    "VideoInfo",
    "VideoMotion",
    "VideoPairsConfig",
    "VideoRejected",
    "estimate_motion",
    "flow_magnitude",
    "make_demo_clips",
    "probe",
    "process_video",
    "score_video",
]
