"""The style product (iMontage style reference, DreamO style and ID + style): config, plan and
per-item function, declared once.

Items are planned round-robin over the tasks; each item's RNG picks its content, style and
person from the pools listed here (names and local paths, loaded lazily in each worker).
Every sample passes the leakage check (`StyleLeakageScorer`) or becomes a reject with its
reason; extra `--scorers` run after it.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from datagen.product import Item, ItemRange, Plan, Product
from datagen.schema import Reject, Sample
from datagen.scoring import specs
from datagen.style.config import CLASSICAL, StyleConfig
from datagen.style.samples import GENERATOR, Pools, StyleMaker
from datagen.style.sources import EMBEDDED_URI, embedded_pool, folder_pool

__all__ = ["PRODUCT", "StyleConfig", "StyleItems", "plan"]


def preflight(cfg: StyleConfig) -> None:
    """Model folders are checked on the driver, before any work."""
    specs.check_weights(specs.parse(cfg.scorers))
    if cfg.generator.startswith("diffusers:"):
        from datagen.weights import require_dir, require_file

        folder = require_dir(cfg.generator[len("diffusers:"):], "diffusers pipeline")
        require_file(folder / "model_index.json", "diffusers pipeline", "save the pipeline with save_pretrained()")


def _item(tasks: tuple[str, ...], index: int) -> Item:
    return Item(index, data={"task": tasks[index % len(tasks)]})


def _pool_source(kind: str, folder: str | None) -> dict[str, Any]:
    from datagen.store import lineage
    from datagen.store.lance_io import normalise_uri

    if not folder:
        return {"kind": kind, "uri": EMBEDDED_URI, "content_hash": None}
    return {"kind": kind, "uri": normalise_uri(folder), "content_hash": lineage.dir_hash(folder)}


def plan(cfg: StyleConfig) -> Plan:
    preflight(cfg)
    contents = folder_pool(cfg.contents, "--contents") if cfg.contents else embedded_pool()
    styles = folder_pool(cfg.styles, "--styles") if cfg.styles else []
    if len(contents) < 2 and not styles:
        raise ValueError("--contents needs at least 2 images: a look's style reference is drawn from another one")
    sources = [_pool_source("contents", cfg.contents)]
    if cfg.styles:
        sources.append(_pool_source("styles", cfg.styles))
    if cfg.generator != CLASSICAL:
        sources.append({"kind": "generator", "uri": cfg.generator, "content_hash": None})
    # The pools' content hashes (not their paths) enter the content key: the same images elsewhere
    # give the same sample ids.
    content = {s["kind"]: s["content_hash"] or s["uri"] for s in sources if s["kind"] != "generator"}
    return Plan(items=ItemRange(cfg.num, partial(_item, cfg.tasks)), sources=sources,
                context=Pools(contents, styles), content=content)


class StyleItems:
    """Per worker: the backend, the face detector (style.id), the leakage check and scorers."""

    def __init__(self, cfg: StyleConfig, pools: Pools):
        from datagen.scoring.leakage import StyleLeakageScorer
        from datagen.storyboard.generators import make_generator

        backend = None if cfg.generator == CLASSICAL else make_generator(cfg.generator)
        if backend is not None:
            backend.setup()
        face_filter = None
        if "style.id" in cfg.tasks:
            from datagen.storyboard.faces import CascadeFaceDetector, FaceFilter

            face_filter = FaceFilter(CascadeFaceDetector())
            face_filter.setup()
        self.maker = StyleMaker(cfg, pools, backend, face_filter)
        self.scorers = [StyleLeakageScorer(cfg.min_style_distance, cfg.min_content_change,
                                           cfg.min_content_structure, cfg.min_identity_distance)]
        self.scorers += specs.build(specs.parse(cfg.scorers))
        for s in self.scorers:
            s.setup()

    def __call__(self, item: Item, rng: np.random.Generator) -> list[Sample | Reject]:
        from datagen.images import ImageRejected
        from datagen.scoring.base import apply_scorer

        task = item.data["task"]
        try:
            made = self.maker.make(task, rng)
        except ImageRejected as exc:  # a content or style file that does not decode
            return [Reject(exc.reason, exc.detail, task=task, stage="source", generator=GENERATOR)]
        if isinstance(made, Reject):
            return [made]
        samples, rejects = [made], []
        for scorer in self.scorers:
            samples, more = apply_scorer(scorer, samples)
            rejects += more
        return [*samples, *rejects]


def loads_models(cfg: StyleConfig) -> bool:
    """A diffusers pipeline or a model-backed scorer loads once per actor; the classical looks, the
    HTTP client and the face cascade set up in milliseconds: stateless tasks."""
    return cfg.generator.startswith("diffusers:") or any(n in specs.MODEL_BACKED for n, _ in specs.parse(cfg.scorers))


PRODUCT = Product(
    name="style",
    summary="Style samples: content + style reference -> stylised content (iMontage), style reference + prompt -> "
            "image and a person + style -> that person stylised (DreamO); leakage-checked.",
    config=StyleConfig,
    plan=plan,
    setup=StyleItems,
    generator="datagen.style",
    # Classical looks: ~20-40 ms per sample at 256 px; a generator backend: seconds per sample.
    shard_size=lambda cfg: 64 if cfg.generator == CLASSICAL else 4,
    reuse_setup=loads_models,
    preflight=preflight,
)
