"""The storyboard product: its config, plan and per-item function, declared once.

`videos`: one item per video file (the listing video-pairs uses; remote videos reach the
item function as local copies made by the harness). `generator`: `num` items, each one
storyboard drawn from seeded templates.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from datagen.product import Item, ItemRange, Plan, Product
from datagen.schema import Reject
from datagen.scoring import specs
from datagen.storyboard.config import TASK, StoryboardConfig
from datagen.storyboard.generators import make_generator
from datagen.video.sources import plan_videos

__all__ = ["PRODUCT", "StoryboardConfig", "StoryboardItems", "plan"]


def _generator_item(spec: str, index: int) -> Item:
    return Item(index, source=f"generator:{spec}#{index}")


CAPTION_PROMPT = "vlm_caption_panel_v1"


def preflight(cfg: StoryboardConfig) -> None:
    """Model folders are checked on the driver, before any work."""
    specs.check_weights(specs.parse(cfg.scorers))
    if cfg.nsfw:
        from datagen.weights import require_hf_folder

        require_hf_folder(cfg.nsfw, "NSFW classifier")
    if cfg.captioner:
        from datagen.scoring.vlm_describe import check_captioner

        check_captioner(cfg.captioner)


def _captioner_content(cfg: StoryboardConfig) -> dict:
    if not cfg.captioner:
        return {}
    from datagen.scoring.vlm_describe import captioner_identity

    return {"captioner": captioner_identity(cfg.captioner, CAPTION_PROMPT)}


def plan(cfg: StoryboardConfig) -> Plan:
    preflight(cfg)
    if cfg.generator:
        return Plan(items=ItemRange(cfg.num, partial(_generator_item, cfg.generator)),
                    sources=[{"kind": "generator", "uri": cfg.generator, "content_hash": None}],
                    content=_captioner_content(cfg))
    plan = plan_videos(cfg.videos, TASK)
    plan.content = {**plan.content, **_captioner_content(cfg)}
    return plan


class StoryboardItems:
    """Per worker: face detector, reference filters, scorers and the generator, set up once."""

    def __init__(self, cfg: StoryboardConfig, context=None):
        from datagen.storyboard.faces import CascadeFaceDetector, FaceFilter
        from datagen.storyboard.nsfw import NSFWFilter

        self.cfg = cfg
        self.detector = CascadeFaceDetector() if cfg.faces else None
        self.filters = [FaceFilter(self.detector)] if self.detector else []
        if cfg.nsfw:
            self.filters.append(NSFWFilter(cfg.nsfw))
        for part in [self.detector, *self.filters]:
            if part is not None:
                part.setup()
        self.scorers = specs.build(specs.parse(cfg.scorers))
        for s in self.scorers:
            s.setup()
        self.generator = make_generator(cfg.generator) if cfg.generator else None
        self.describer = None
        if cfg.captioner:
            from datagen.scoring.vlm_describe import VLMDescriber

            self.describer = VLMDescriber(cfg.captioner, CAPTION_PROMPT, max_new_tokens=cfg.captioner_tokens)
            self.describer.setup()

    def __call__(self, item: Item, rng: np.random.Generator):
        from datagen.storyboard.keyframes import storyboard_from_keyframes
        from datagen.video.keyframes import frames_with_shots
        from datagen.video.probe import VideoRejected

        if self.generator is not None:
            return self._generated(item, rng)
        try:
            shots = frames_with_shots(item.path, fps=self.cfg.sample_fps, max_side=self.cfg.max_side)
        except VideoRejected as exc:
            return [Reject(exc.reason, exc.detail, source=item.source, task=TASK, stage="decode")]
        samples, rejects = storyboard_from_keyframes(
            shots.frames, shots.shot_ids, self.cfg, rng, source=item.data["video_id"], times=shots.times,
            face_detector=self.detector, reference_filters=self.filters, describer=self.describer,
            scorers=self.scorers)
        return [*samples, *rejects]

    def _generated(self, item: Item, rng: np.random.Generator) -> list:
        """A generated storyboard; with a captioner, its panels are captioned before scoring."""
        from datagen.scoring.base import apply_scorer
        from datagen.storyboard.from_generator import storyboard_from_generator
        from datagen.storyboard.keyframes import recaption

        if self.describer is None:
            samples, rejects = storyboard_from_generator(self.cfg, rng, self.generator,
                                                         reference_filters=self.filters, scorers=self.scorers)
            return [*samples, *rejects]
        made, rejects = storyboard_from_generator(self.cfg, rng, self.generator, reference_filters=self.filters)
        samples = []
        for s in made:
            s = recaption(s, self.cfg, self.describer, item.source)
            (samples if not isinstance(s, Reject) else rejects).append(s)
        for scorer in self.scorers:
            samples, more = apply_scorer(scorer, samples)
            rejects += more
        return [*samples, *rejects]


def loads_models(cfg: StoryboardConfig) -> bool:
    """Weights to load (NSFW classifier, a model-backed scorer, a captioner, a diffusers pipeline): actors
    load them once. The face cascade and the classical scorers set up in milliseconds: stateless tasks."""
    model_scorers = any(name in specs.MODEL_BACKED for name, _ in specs.parse(cfg.scorers))
    return bool(cfg.nsfw) or bool(cfg.captioner) or model_scorers or \
        bool(cfg.generator and cfg.generator.startswith("diffusers:"))


PRODUCT = Product(
    name="storyboard",
    summary="Storyboards: a character reference -> panels with captions, from the shots of videos or a generator "
            "backend; identity/diversity scored.",
    config=StoryboardConfig,
    plan=plan,
    setup=StoryboardItems,
    generator="datagen.storyboard",
    # One storyboard per shard: a video's decode, cut detection and face search take seconds (a film, minutes).
    shard_size=1,
    reuse_setup=loads_models,
    preflight=preflight,
)
