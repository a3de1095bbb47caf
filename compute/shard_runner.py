"""What a Ray worker does with one shard: run the product's pure function on each planned
item, turn every outcome into a sample row or a reject row, and write both as uncommitted
Lance fragments.

Every item yields at least one row (a sample or a reject): an exception or an empty result
becomes a reject with the reason, so inputs = kept + rejected holds for every run.
"""

from __future__ import annotations

import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

from datagen import schema
from datagen.schema import Reject, Sample
from datagen.store import digest, lance_io


class ItemWorker(Protocol):
    """A product's per-actor worker: item dict -> samples and/or rejects (pure data logic).

    A worker that gains from batching (a model forward over many images) may also define
    `process_batch(items) -> list[list[Sample | Reject]]`, one list per item, in order; if
    it raises, the shard falls back to one item at a time so one bad item cannot sink it.
    """

    def __call__(self, item: dict[str, Any]) -> Iterable[Sample | Reject]: ...


@dataclass(frozen=True)
class RunIdentity:
    """What every row of a run is stamped with."""

    kind: str
    content_key: str  # hash of the content-defining config; part of every sample id
    seed: int
    run_id: str
    out_uri: str
    rejects_uri: str
    generator: str = ""


@dataclass
class ShardOutcome:
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    tasks: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    items_with_samples: int = 0
    items_rejected: int = 0
    encode_seconds: float = 0.0  # part of generating: building rows, PNG-encoding their images


def _reject_from_error(item: dict[str, Any], exc: BaseException) -> Reject:
    tail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return Reject(
        reason=f"error:{type(exc).__name__}",
        detail=tail,
        source=str(item.get("source", "")),
        task=str(item.get("task", "")),
        stage="generate",
    )


def _failure(sample: Sample, check: Callable[[Sample], str | None] | None) -> tuple[str, str, str] | None:
    """(reason, detail, stage) when a sample must not be kept."""
    try:
        schema.validate(sample)
    except schema.InvalidSample as exc:
        return "invalid_sample", str(exc), "validate"
    if check is not None:
        msg = check(sample)
        if msg:
            code = msg.split(":", 1)[0].strip().replace(" ", "_")
            return f"checker_{code}", msg, "validate"
    return None


def process_item(
    worker: ItemWorker,
    item: dict[str, Any],
    ident: RunIdentity,
    check: Callable[[Sample], str | None] | None,
    out: ShardOutcome,
    precomputed: list[Sample | Reject] | None = None,
) -> None:
    index = int(item["index"])
    if precomputed is not None:
        records = list(precomputed)
    else:
        try:
            records = list(worker(item))
        except Exception as exc:  # one bad item must not end the run
            records = [_reject_from_error(item, exc)]
    if not records:
        records = [Reject("no_output", "the generator produced neither a sample nor a reject",
                          source=str(item.get("source", "")), task=str(item.get("task", "")))]
    kept = 0
    for k, rec in enumerate(records):
        if isinstance(rec, Sample):
            rec.index, rec.seed, rec.run_id = index, ident.seed, ident.run_id
            rec.generator = rec.generator or ident.generator
            rec.sample_id = schema.make_id(ident.kind, ident.content_key, ident.seed, index, k)
            failure = _failure(rec, check)
            if failure is None:
                try:
                    t0 = time.perf_counter()
                    out.rows.append(schema.to_row(rec))
                    out.encode_seconds += time.perf_counter() - t0
                except Exception as exc:  # e.g. an image the encoder refuses
                    failure = ("encode_error", f"{type(exc).__name__}: {exc}", "encode")
            if failure is None:
                out.tasks[rec.task] += 1
                kept += 1
                continue
            reason, detail, stage = failure
            rec = Reject(reason, detail=detail, source=";".join(rec.source_ids), task=rec.task,
                         stage=stage, meta=rec.meta, generator=rec.generator)
        rec.index, rec.seed, rec.run_id = index, ident.seed, ident.run_id
        rec.generator = rec.generator or ident.generator
        rec.source = rec.source or str(item.get("source", ""))
        rec.task = rec.task or str(item.get("task", ""))
        rec.reject_id = schema.make_id(ident.kind, ident.content_key, ident.seed, "reject", index, k)
        out.rejects.append(schema.reject_row(rec))
        out.reasons[rec.reason] += 1
    if kept:
        out.items_with_samples += 1
    else:
        out.items_rejected += 1


class ShardRunner:
    """Callable run inside a Ray actor: shard payload -> written fragments + counts."""

    def __init__(self, ident: RunIdentity, make_worker: Callable[[], ItemWorker],
                 check: Callable[[Sample], str | None] | None = None):
        self.ident = ident
        self.worker = make_worker()  # expensive setup (assets, models) once per actor
        self.check = check

    def __call__(self, payload: dict[str, Any]) -> dict[str, Any]:
        t0 = time.perf_counter()
        out = ShardOutcome()
        items = payload["items"]
        batched = None
        if hasattr(self.worker, "process_batch"):
            try:
                batched = self.worker.process_batch(items)
                if len(batched) != len(items):
                    raise RuntimeError(f"process_batch returned {len(batched)} results for {len(items)} items")
            except Exception:  # fall back to one item at a time: the culprit becomes a reject
                batched = None
        for k, item in enumerate(items):
            process_item(self.worker, item, self.ident, self.check, out, None if batched is None else batched[k])
        t1 = time.perf_counter()
        sample_table = schema.pa.Table.from_pylist(out.rows, schema=schema.SAMPLE_SCHEMA)
        reject_table = schema.pa.Table.from_pylist(out.rejects, schema=schema.REJECT_SCHEMA)
        frags = lance_io.write_uncommitted(sample_table, self.ident.out_uri, schema.SAMPLE_SCHEMA)
        rfrags = lance_io.write_uncommitted(reject_table, self.ident.rejects_uri, schema.REJECT_SCHEMA)
        sdigest = digest.table_digest(sample_table)
        rdigest = digest.table_digest(reject_table)
        return {
            "items": len(payload["items"]),
            "rows": sample_table.num_rows,
            "rejects": reject_table.num_rows,
            "fragments": frags,
            "reject_fragments": rfrags,
            "digest": f"{sdigest:064x}",
            "reject_digest": f"{rdigest:064x}",
            "tasks": dict(out.tasks),
            "reasons": dict(out.reasons),
            "items_with_samples": out.items_with_samples,
            "items_rejected": out.items_rejected,
            "run_id": self.ident.run_id,
            # "encode" is the share of "generate" spent turning samples into rows (PNG encoding)
            "seconds": {"generate": t1 - t0, "encode": out.encode_seconds, "write": time.perf_counter() - t1},
        }


def make_shard_runner(ident: RunIdentity, make_worker: Callable[[], ItemWorker],
                      check: Callable[[Sample], str | None] | None = None) -> ShardRunner:
    return ShardRunner(ident, make_worker, check)
