"""Collage worker: holds the asset pack; one sample per planned index."""

from __future__ import annotations

from typing import Any

from datagen.rng import sample_rng


class CollageWorker:
    """Per-actor worker: holds the asset pack; one sample per planned index."""

    def __init__(self, pack: Any, size: int, seed: int):
        from datagen.collage import TASKS, CollageSpec, generate

        self.pack, self.size, self.seed = pack, size, seed
        # Once per actor, like loading a model: assets pre-scaled to this canvas size, and
        # one throwaway draw per task so fonts and caches are warm before the first shard.
        self.pack.prepared(size)
        for k, task in enumerate(TASKS):
            generate(CollageSpec(task=task, size=size, assets=pack), sample_rng(-1, k))

    def __call__(self, item: dict[str, Any]):
        from datagen.collage import CollageSpec, generate

        spec = CollageSpec(task=item["task"], size=self.size, assets=self.pack)
        return [generate(spec, sample_rng(self.seed, item["index"]))]
