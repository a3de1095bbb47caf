"""Collage worker: holds the asset pack; one sample per planned index."""

from __future__ import annotations

from typing import Any

from datagen.rng import sample_rng


class CollageWorker:
    """Per-actor worker: holds the asset pack; one sample per planned index."""

    def __init__(self, pack: Any, size: int, seed: int):
        self.pack, self.size, self.seed = pack, size, seed
        self.pack.prepared(size)  # once per actor, like loading a model: assets pre-scaled to the canvas

    def __call__(self, item: dict[str, Any]):
        from datagen.collage import CollageSpec, generate

        spec = CollageSpec(task=item["task"], size=self.size, assets=self.pack)
        return [generate(spec, sample_rng(self.seed, item["index"]))]
