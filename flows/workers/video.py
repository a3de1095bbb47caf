"""Video worker: one video per item; remote videos are copied to local scratch first."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from datagen.rng import sample_rng


class VideoWorker:
    """Per-actor: one video per item; remote videos are copied to local scratch first."""

    def __init__(self, seed: int, config: dict[str, Any]):
        from datagen.video import VideoPairConfig
        from datagen.video.filters import MotionRule, QualityRule
        from datagen.video.probe import Limits
        from datagen.video.shots import CutRule

        nested = {"limits": Limits, "quality": QualityRule, "motion": MotionRule, "cut": CutRule}
        kw = {k: (nested[k](**v) if k in nested else tuple(v) if isinstance(v, list) else v) for k, v in config.items()}
        self.seed, self.config = seed, VideoPairConfig(**kw)

    def __call__(self, item: dict[str, Any]):
        from datagen.video import process_video

        rng = sample_rng(self.seed, item["index"])
        src = item["source"]
        if "://" not in src:
            samples, rejects = process_video(src, self.config, rng, video_id=item["video_id"])
            return [*samples, *rejects]
        scratch = tempfile.mkdtemp(prefix="unimontage-video-")
        try:
            local = os.path.join(scratch, Path(src).name)
            fs, path = pafs.FileSystem.from_uri(src)
            with fs.open_input_stream(path) as fin, open(local, "wb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
            samples, rejects = process_video(local, self.config, rng, video_id=item["video_id"])
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return [*samples, *rejects]
