"""The video-pairs product (iMontage): its config, plan and per-item function, declared once.

One item per video file (`datagen.video.sources`); the harness hands the item function a
local path of it, so remote videos need nothing here.
"""

from __future__ import annotations

import numpy as np

from datagen.product import Item, Plan, Product
from datagen.video.config import VideoPairsConfig
from datagen.video.process import check_models, process_video
from datagen.video.sources import inputs_digest, list_videos, video_items

__all__ = ["PRODUCT", "VideoPairItems", "VideoPairsConfig", "plan"]


def plan(cfg: VideoPairsConfig) -> Plan:
    check_models(cfg)  # a missing model folder fails here, before any work
    files = list_videos(cfg.videos)
    return Plan(items=video_items(files), sources=[v.source() for v in files], content=inputs_digest(files))


class VideoPairItems:
    """Per worker: nothing to load for the classical path; a VLM captioner loads once per process."""

    def __init__(self, cfg: VideoPairsConfig, context=None):
        self.cfg = cfg

    def __call__(self, item: Item, rng: np.random.Generator):
        samples, rejects = process_video(item.path, self.cfg, rng, video_id=item.data["video_id"], source=item.source)
        return [*samples, *rejects]


def loads_models(cfg: VideoPairsConfig) -> bool:
    return cfg.optical_flow == "raft" or cfg.captioner == "vlm"


PRODUCT = Product(
    name="video-pairs",
    summary="iMontage-style video frame pairs within shots and across cuts, motion-scored by optical flow "
            "(pixels of the original resolution).",
    config=VideoPairsConfig,
    plan=plan,
    setup=VideoPairItems,
    generator="datagen.video",
    # A shard of two videos: a few seconds to a few tens of seconds of decoding and optical flow.
    shard_size=2,
    # Classical optical flow needs no setup: stateless tasks. RAFT or a VLM: actors load them once.
    reuse_setup=loads_models,
    preflight=check_models,
    max_input_bytes=lambda cfg: cfg.limits.max_bytes,  # a remote video is refused before it is copied
)
