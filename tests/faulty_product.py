"""A product whose items misbehave on purpose, for the fault-containment tests.

Each config field names the item indices that misbehave in one way: crash the worker
process (SIGSEGV, standing in for a crash inside PyAV/OpenCV/PIL), hang forever, raise,
return None or a wrong type, put NaN in sample or reject meta, or trip the checker.
Every other item is a valid 16x16 sample.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

import numpy as np

from datagen.params import ProductConfig, param
from datagen.product import Item, ItemRange, Plan, Product
from datagen.schema import Picture, Reject, Sample


@dataclass(frozen=True)
class FaultyConfig(ProductConfig):
    num: int = param(8, "Items.", min=1, content=False)
    crash: tuple[int, ...] = param((), "Indices whose worker process dies (SIGSEGV).")
    hang: tuple[int, ...] = param((), "Indices that never return.")
    raise_: tuple[int, ...] = param((), "Indices that raise.", flag="--raise")
    none: tuple[int, ...] = param((), "Indices that return None.")
    junk: tuple[int, ...] = param((), "Indices that return something that is not a record.")
    nan_meta: tuple[int, ...] = param((), "Indices whose sample meta holds NaN.")
    nan_reject_meta: tuple[int, ...] = param((), "Indices that reject with NaN in the reject's meta.")
    bad_check: tuple[int, ...] = param((), "Indices the checker raises on.")
    reuse_setup: bool = param(True, "Run in actors (True) or tasks (False).")


def plan(cfg: FaultyConfig) -> Plan:
    return Plan(items=ItemRange(cfg.num, _item))


def _item(index: int) -> Item:
    return Item(index, source=f"faulty:{index}", data={"task": "t2i.faulty"})


class FaultyItems:
    def __init__(self, cfg: FaultyConfig, context):
        self.cfg = cfg

    def __call__(self, item: Item, rng: np.random.Generator):
        i, cfg = item.index, self.cfg
        if i in cfg.crash:
            os.kill(os.getpid(), signal.SIGSEGV)
        if i in cfg.hang:
            time.sleep(3600)
        if i in cfg.raise_:
            raise RuntimeError(f"item {i} raised")
        if i in cfg.none:
            return None
        if i in cfg.junk:
            return [{"not": "a record"}]
        if i in cfg.nan_reject_meta:
            return [Reject("too_dull", "dull", meta={"score": float("nan")})]
        pixels = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
        meta = {"score": float("nan") if i in cfg.nan_meta else 1.0, "check_raises": i in cfg.bad_check}
        return [Sample("t2i.faulty", f"Picture {i}.", [], [Picture(pixels, "target")], meta=meta,
                       source_ids=[item.source], generator="tests.faulty@1")]


def check(sample: Sample) -> str | None:
    if sample.meta.get("check_raises"):
        raise ZeroDivisionError("the checker broke")
    return None


PRODUCT = Product(name="faulty", summary="Items that misbehave on purpose.", config=FaultyConfig, plan=plan,
                  setup=FaultyItems, generator="tests.faulty", check=check, shard_size=4,
                  reuse_setup=lambda cfg: cfg.reuse_setup)
