"""A tiny data product for harness tests: real samples, real rejects, a real exception."""

from __future__ import annotations

import numpy as np

from datagen.rng import sample_rng
from datagen.schema import Picture, Region, Reject, Sample


class ToyWorker:
    """index % 7 == 3 -> reject; index % 11 == 5 -> raises; otherwise a 'paint a square' sample."""

    def __init__(self, seed: int, size: int = 32):
        self.seed, self.size = seed, size

    def __call__(self, item):
        i = item["index"]
        if i % 7 == 3:
            return [Reject("too_dark", f"item {i} is dark", source=f"toy:{i}", task="edit.add")]
        if i % 11 == 5:
            raise RuntimeError(f"toy generator failed on {i}")
        rng = sample_rng(self.seed, i)
        bg = rng.integers(0, 255, (self.size, self.size, 3), dtype=np.uint8)
        out = bg.copy()
        y, x = rng.integers(0, self.size - 8, 2)
        out[y:y + 8, x:x + 8] = (255, 0, 0)
        mask = np.zeros((self.size, self.size), bool)
        mask[y:y + 8, x:x + 8] = True
        return [Sample("edit.add", "Add a red square to <image 1>.", [Picture(bg, "source")],
                       [Picture(out, "target")], [Region("added", "output", 0, mask)],
                       meta={"y": int(y), "x": int(x)}, source_ids=[f"toy:{i}"], generator="tests.toy@1")]


class MakeToy:
    def __init__(self, seed: int):
        self.seed = seed

    def __call__(self):
        return ToyWorker(self.seed)


def toy_check(sample: Sample) -> str | None:
    diff = (sample.inputs[0].pixels != sample.outputs[0].pixels).any(axis=2)
    extra = int((diff & ~sample.regions[0].mask).sum())
    return f"diff_outside_region: {extra}px" if extra else None
