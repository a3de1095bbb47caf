"""The product contract: how a dataset product is declared, once.

A product is three Prefect- and Ray-free pieces plus a few facts:

- `config`: a frozen `ProductConfig` dataclass (every content parameter, its default, help
  and validation; see `datagen/params.py`);
- `plan(config) -> Plan`: inputs -> items, lineage sources, inputs rejected while planning,
  and an optional `context` built once on the driver and shipped to every worker;
- `setup(config, context) -> item function`: run once per Ray worker (load weights, prepare
  assets); the item function maps `(item, rng) -> list[Sample | Reject]`.

The harness (`compute/harness.py`) does everything else every product needs: shards,
the per-sample RNG `sample_rng(seed, item.index)`, a local view of remote inputs (a bounded
copy of an object-store file, or the decoded row of a Lance source), ids, accounting,
Lance writes, the commit with its lineage. The flows derive the CLI command, the Prefect
flow and its deployment form, and the card from the same declaration.

Two facts the product declares, by one rule each:
- `shard_size`: about a few tens of seconds of one worker's time at the default config.
  A shard is the unit of resume and the most work a crash can cost before it is bisected.
- `reuse_setup`: True when setup is expensive (model weights, asset preparation): shards
  then run in a Ray actor pool and setup runs once per actor. False when setup is cheap:
  stateless Ray tasks (setup per shard) balance load better and isolate crashes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

import numpy as np

from datagen.params import ProductConfig
from datagen.schema import Reject, Sample

# What the harness makes local for an item before its function runs (`Item.input`).
INPUT_NONE, INPUT_FILE, INPUT_ROW = "", "file", "row"


@dataclass(frozen=True)
class Item:
    """One planned input. JSON-able: it travels to a worker in its shard's payload."""

    index: int  # position in the plan: the sample RNG and ids derive from it
    source: str = ""  # what samples and rejects name: a path, URI, URI@VERSION#row or id
    data: dict[str, Any] = field(default_factory=dict)  # the product's own fields (task, video_id, ...)
    input: str = INPUT_NONE  # "file": `source` is a file to read; "row": `source` is URI@VERSION#row
    # Filled in by the harness on the worker, never by the plan:
    path: str = ""  # a local path of `source` ("file" inputs), valid while the item function runs
    row: dict[str, Any] | None = None  # the stored row ("row" inputs)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index}
        if self.source:
            out["source"] = self.source
        if self.data:
            out["data"] = self.data
        if self.input:
            out["input"] = self.input
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Item:
        return cls(int(d["index"]), d.get("source", ""), d.get("data") or {}, d.get("input", INPUT_NONE))


class ItemRange(Sequence):
    """Items computed from their index: a plan of a million samples holds no per-item objects."""

    def __init__(self, count: int, make: Callable[[int], Item]):
        self.count, self.make = count, make

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self.make(k) for k in range(*i.indices(self.count))]
        if not -self.count <= i < self.count:
            raise IndexError(i)
        return self.make(i % self.count)

    def __iter__(self) -> Iterator[Item]:
        return (self.make(k) for k in range(self.count))


@dataclass
class Plan:
    items: Sequence[Item]
    sources: list[dict[str, Any]] = field(default_factory=list)  # lineage: kind, uri, content_hash[, ref]
    pre_rejects: list[Reject] = field(default_factory=list)  # inputs refused while planning
    context: Any = None  # built once on the driver, handed to every worker's setup (must pickle)
    content: dict[str, Any] = field(default_factory=dict)  # input identity beyond the config (content hashes)


class ItemFunction(Protocol):
    """`(item, rng) -> samples and/or rejects`. May also define `process_batch(items, rngs)`
    returning one list per item, in order (a model forward over many images); if it raises,
    the harness falls back to one item at a time so one bad item cannot sink the shard."""

    def __call__(self, item: Item, rng: np.random.Generator) -> list[Sample | Reject]: ...


@dataclass(frozen=True)
class Product:
    name: str  # CLI command (`unimontage datagen <name>`), flow name `<name>-dataset`, lineage `product`
    summary: str  # one line: CLI help and flow description
    config: type[ProductConfig]
    plan: Callable[[Any], Plan]
    setup: Callable[[Any, Any], ItemFunction]
    generator: str  # "module@version" of the code that makes the bytes
    check: Callable[[Sample], str | None] | None = None  # independent per-sample checker (also audits stored rows)
    shard_size: int | Callable[[Any], int] = 16  # may depend on the config (model-backed kinds are slower)
    reuse_setup: bool | Callable[[Any], bool] = False
    # A remote input larger than this is rejected before it is copied (may depend on the config).
    max_input_bytes: int | Callable[[Any], int] = 8 << 30
    # Cheap checks that need more than the config's own fields (weight files exist, a backend
    # spec parses): the CLI runs them before starting Prefect or Ray, the plan again.
    preflight: Callable[[Any], None] | None = None

    def uses_actors(self, config: ProductConfig) -> bool:
        return self.reuse_setup(config) if callable(self.reuse_setup) else bool(self.reuse_setup)

    def input_cap(self, config: ProductConfig) -> int:
        return int(self.max_input_bytes(config) if callable(self.max_input_bytes) else self.max_input_bytes)

    def shard_size_for(self, config: ProductConfig) -> int:
        return int(self.shard_size(config) if callable(self.shard_size) else self.shard_size)

    def make_config(self, values: dict[str, Any]) -> ProductConfig:
        return self.config.from_dict(values)
