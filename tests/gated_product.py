"""A product whose later items wait while a gate file exists: a run can be held mid-way on
purpose, its finished shards on storage, and killed there (the interrupted-run tests).

Items with index >= `hold_from` block while `gate` exists (at most `max_hold_s`); every item
is a small picture drawn from its own RNG. `gate` and `hold_from` are not content: a held run
and an unheld one make the same bytes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from datagen.params import ProductConfig, param
from datagen.product import Item, ItemRange, Plan, Product
from datagen.schema import Picture, Sample


@dataclass(frozen=True)
class GatedConfig(ProductConfig):
    num: int = param(16, "Items.", min=1, content=False)
    gate: str = param("", "Items at or past hold_from wait while this file exists.", content=False)
    hold_from: int = param(0, "First item index that waits for the gate.", min=0, content=False)
    max_hold_s: float = param(300.0, "Longest wait for the gate.", min=0.0, content=False)


def _item(index: int) -> Item:
    return Item(index, source=f"gated:{index}", data={"task": "t2i.gated"})


def plan(cfg: GatedConfig) -> Plan:
    return Plan(items=ItemRange(cfg.num, _item), sources=[{"kind": "gated", "uri": "embedded:gated",
                                                           "content_hash": "0"}])


class GatedItems:
    def __init__(self, cfg: GatedConfig, context):
        self.cfg = cfg

    def __call__(self, item: Item, rng: np.random.Generator):
        cfg = self.cfg
        if cfg.gate and item.index >= cfg.hold_from:
            deadline = time.monotonic() + cfg.max_hold_s
            while os.path.exists(cfg.gate) and time.monotonic() < deadline:
                time.sleep(0.05)
        pixels = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
        return [Sample("t2i.gated", f"Picture {item.index}.", [], [Picture(pixels, "target")],
                       source_ids=[item.source], generator="tests.gated@1")]


PRODUCT = Product(name="gated", summary="Items that wait for a gate file.", config=GatedConfig, plan=plan,
                  setup=GatedItems, generator="tests.gated", shard_size=4, reuse_setup=False)
