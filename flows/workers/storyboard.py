"""Storyboard worker: face detector, filters, scorers and the generator set up once per actor."""

from __future__ import annotations

from typing import Any

from datagen.rng import sample_rng
from datagen.schema import Reject
from flows import scorer_specs


def make_generator(spec: str):
    from datagen.storyboard import DiffusersGenerator, HTTPGenerator

    if spec.startswith(("http://", "https://")):
        return HTTPGenerator(spec)
    if spec.startswith("diffusers:"):
        return DiffusersGenerator(spec[len("diffusers:"):])
    raise ValueError(f"--generator {spec!r}: use diffusers:/path/to/pipeline or an http(s):// endpoint")


class StoryboardWorker:
    """Per-actor: face detector, filters, scorers and the generator are set up once."""

    def __init__(self, seed: int, config: dict[str, Any], scorers: list, faces: bool, nsfw: str | None,
                 generator: str | None, fps: float):
        from datagen.storyboard import (
            CascadeFaceDetector,
            FaceFilter,
            NSFWFilter,
            StoryboardConfig,
        )

        self.seed, self.fps, self.config = seed, fps, StoryboardConfig(**config)
        self.detector = CascadeFaceDetector() if faces else None
        self.filters = [FaceFilter(self.detector)] if self.detector else []
        if nsfw:
            self.filters.append(NSFWFilter(nsfw))
        for f in [self.detector, *self.filters]:
            if f is not None:
                f.setup()
        self.scorers = scorer_specs.build(scorers)
        for s in self.scorers:
            s.setup()
        self.generator = make_generator(generator) if generator else None

    def __call__(self, item: dict[str, Any]):
        from datagen.storyboard import (
            storyboard_from_generator,
            storyboard_from_keyframes,
        )
        from datagen.video.keyframes import frames_with_shots
        from datagen.video.probe import VideoRejected

        rng = sample_rng(self.seed, item["index"])
        if self.generator is not None:
            samples, rejects = storyboard_from_generator(self.config, rng, self.generator,
                                                         reference_filters=self.filters, scorers=self.scorers)
            return [*samples, *rejects]
        try:
            shots = frames_with_shots(item["source"], fps=self.fps, max_side=self.config.max_side)
        except VideoRejected as exc:
            return [Reject(exc.reason, exc.detail, source=item["source"], task="storyboard", stage="decode")]
        samples, rejects = storyboard_from_keyframes(
            shots.frames, shots.shot_ids, self.config, rng, source=item.get("video_id", item["source"]), times=shots.times,
            face_detector=self.detector, reference_filters=self.filters, scorers=self.scorers)
        return [*samples, *rejects]
