"""A sixth product in ten lines of declaration: proves that a product written outside the
package goes through the same contract, harness, CLI and flow derivation as the five.

index % 7 == 3 -> a reject; index % 11 == 5 -> the item function raises; otherwise a
'paint a square' edit sample with its exact region.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datagen.params import ProductConfig, param
from datagen.product import Item, ItemRange, Plan, Product
from datagen.schema import Picture, Region, Reject, Sample


@dataclass(frozen=True)
class ToyConfig(ProductConfig):
    num: int = param(help="Items to plan.", min=1, content=False)
    size: int = param(32, "Canvas side in pixels.", min=16, max=256)
    colour: str = param("red", "Colour of the square.", choices=("red", "green"))


def _item(index: int) -> Item:
    return Item(index, source=f"toy:{index}", data={"task": "edit.add"})


def plan(cfg: ToyConfig) -> Plan:
    return Plan(items=ItemRange(cfg.num, _item), sources=[{"kind": "toy", "uri": "embedded:toy", "content_hash": "0"}])


class ToyItems:
    def __init__(self, cfg: ToyConfig, context):
        self.size = cfg.size
        self.rgb = (255, 0, 0) if cfg.colour == "red" else (0, 255, 0)

    def __call__(self, item: Item, rng: np.random.Generator):
        i = item.index
        if i % 7 == 3:
            return [Reject("too_dark", f"item {i} is dark", source=item.source, task="edit.add")]
        if i % 11 == 5:
            raise RuntimeError(f"toy generator failed on {i}")
        bg = rng.integers(0, 255, (self.size, self.size, 3), dtype=np.uint8)
        out = bg.copy()
        y, x = rng.integers(0, self.size - 8, 2)
        out[y:y + 8, x:x + 8] = self.rgb
        mask = np.zeros((self.size, self.size), bool)
        mask[y:y + 8, x:x + 8] = True
        return [Sample("edit.add", "Add a square to <image 1>.", [Picture(bg, "source")],
                       [Picture(out, "target")], [Region("added", "output", 0, mask)],
                       meta={"y": int(y), "x": int(x)}, source_ids=[item.source], generator="tests.toy@1")]


def toy_check(sample: Sample) -> str | None:
    diff = (sample.inputs[0].pixels != sample.outputs[0].pixels).any(axis=2)
    extra = int((diff & ~sample.regions[0].mask).sum())
    return f"diff_outside_region: {extra}px" if extra else None


PRODUCT = Product(name="toy", summary="A toy edit product for tests.", config=ToyConfig, plan=plan,
                  setup=ToyItems, generator="tests.toy", check=toy_check, shard_size=6)
