"""Multi-view worker: scorers loaded once per actor; one capture folder per item."""

from __future__ import annotations

from typing import Any

from datagen.rng import sample_rng
from flows import scorer_specs


class MultiviewWorker:
    """Per-actor: scorers loaded once; one capture folder per item."""

    def __init__(self, seed: int, config: dict[str, Any], scorers: list):
        from datagen.multiview import MultiviewConfig

        self.seed, self.config = seed, MultiviewConfig(**config)
        self.scorers = scorer_specs.build(scorers)
        for s in self.scorers:
            s.setup()

    def __call__(self, item: dict[str, Any]):
        from datagen.multiview import multiview_samples

        samples, rejects = multiview_samples(item["source"], self.config, sample_rng(self.seed, item["index"]),
                                             scorers=self.scorers)
        return [*samples, *rejects]
