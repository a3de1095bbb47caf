"""What a Ray worker does with one shard: give each planned item its RNG and a local view of
its input, run the product's item function, turn every outcome into a sample row or a
reject row, and write both as uncommitted Lance fragments.

Every item yields at least one row (a sample or a reject): an exception anywhere between
the item and its row (the item function, the checker, validation, encoding, a result that
is not a list of records) becomes a reject with the reason, so inputs = kept + rejected
holds for every run.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from compute import inputs
from datagen import schema
from datagen.product import Item, ItemFunction, Product
from datagen.rejection import Rejected
from datagen.rng import sample_rng
from datagen.schema import Reject, Sample
from datagen.store import digest, lance_io


@dataclass(frozen=True)
class RunIdentity:
    """What every row of a run is stamped with."""

    product: str
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


def _reject_from_error(item: Item, exc: BaseException, stage: str = "generate") -> Reject:
    if isinstance(exc, Rejected):  # an input the product or the harness refused, with its code
        return Reject(exc.reason, exc.detail, source=item.source, task=str(item.data.get("task", "")), stage=stage)
    tail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return Reject(reason=f"error:{type(exc).__name__}", detail=tail, source=item.source,
                  task=str(item.data.get("task", "")), stage=stage)


def _failure(sample: Sample, check: Callable[[Sample], str | None] | None) -> tuple[str, str, str] | None:
    """(reason, detail, stage) when a sample must not be kept."""
    try:
        schema.validate(sample)
    except schema.InvalidSample as exc:
        return "invalid_sample", str(exc), "validate"
    if check is not None:
        try:
            msg = check(sample)
        except Exception as exc:  # a checker that breaks must not keep (or lose) the sample
            return f"checker_error:{type(exc).__name__}", str(exc)[:500], "validate"
        if msg:
            code = msg.split(":", 1)[0].strip().replace(" ", "_")
            return f"checker_{code}", msg, "validate"
    return None


def _records(result: Any) -> list[Sample | Reject]:
    if result is None:
        return []
    records = list(result) if isinstance(result, (list, tuple)) else [result]
    bad = [type(r).__name__ for r in records if not isinstance(r, (Sample, Reject))]
    if bad:
        raise TypeError(f"the item function returned {', '.join(sorted(set(bad)))}, not Sample/Reject")
    return records


def _stamp_reject(rec: Reject, item: Item, ident: RunIdentity, k: int) -> dict[str, Any]:
    rec.index, rec.seed, rec.run_id = item.index, ident.seed, ident.run_id
    rec.generator = rec.generator or ident.generator
    rec.source = rec.source or item.source
    rec.task = rec.task or str(item.data.get("task", ""))
    rec.reject_id = schema.make_id(ident.product, ident.content_key, ident.seed, "reject", item.index, k)
    try:
        return schema.reject_row(rec)
    except (TypeError, ValueError) as exc:  # e.g. NaN in the reject's meta: keep the reject, drop the meta
        rec.meta = {"meta_error": f"{type(exc).__name__}: {exc}"[:500]}
        return schema.reject_row(rec)


def process_item(item: Item, records: list[Sample | Reject], ident: RunIdentity,
                 check: Callable[[Sample], str | None] | None, out: ShardOutcome) -> None:
    """Records of one item -> sample rows (validated, checked, encoded) and reject rows."""
    if not records:
        records = [Reject("no_output", "the item function produced neither a sample nor a reject")]
    kept = 0
    for k, rec in enumerate(records):
        if isinstance(rec, Sample):
            rec.index, rec.seed, rec.run_id = item.index, ident.seed, ident.run_id
            rec.generator = rec.generator or ident.generator
            rec.sample_id = schema.make_id(ident.product, ident.content_key, ident.seed, item.index, k)
            failure = _failure(rec, check)
            if failure is None:
                try:
                    t0 = time.perf_counter()
                    out.rows.append(schema.to_row(rec))
                    out.encode_seconds += time.perf_counter() - t0
                except Exception as exc:  # an image the encoder refuses, meta that is not strict JSON
                    failure = ("encode_error", f"{type(exc).__name__}: {exc}", "encode")
            if failure is None:
                out.tasks[rec.task] += 1
                kept += 1
                continue
            reason, detail, stage = failure
            meta = rec.meta if stage != "encode" else {}
            rec = Reject(reason, detail=detail, source=";".join(rec.source_ids), task=rec.task,
                         stage=stage, meta=meta, generator=rec.generator)
        out.rejects.append(_stamp_reject(rec, item, ident, k))
        out.reasons[rec.reason] += 1
    if kept:
        out.items_with_samples += 1
    else:
        out.items_rejected += 1


class ShardRunner:
    """Callable run inside a Ray worker: shard payload -> written fragments + counts."""

    def __init__(self, ident: RunIdentity, product: Product, config: Any, context: Any):
        self.ident, self.product = ident, product
        self.fn: ItemFunction = product.setup(config, context)  # expensive setup once per actor
        self.check = product.check
        self.input_cap = product.input_cap(config)

    @contextlib.contextmanager
    def _view(self, item: Item, rows: dict[int, Any]):
        """The item as its function sees it: with a local path or its stored row."""
        if item.input == "row":
            row = rows.get(item.index)
            if isinstance(row, Exception):
                raise row
            yield replace(item, row=row)
        elif inputs.needs_file(item):
            with inputs.local_file(item.source, self.input_cap) as path:
                yield replace(item, path=path)
        else:
            yield item

    def _one(self, item: Item, rows: dict[int, Any]) -> list[Sample | Reject]:
        rng = sample_rng(self.ident.seed, item.index)
        try:
            with self._view(item, rows) as view:
                return _records(self.fn(view, rng))
        except inputs.InputUnavailable as exc:
            return [_reject_from_error(item, exc, stage="source")]
        except Exception as exc:  # one bad item must not end the run
            return [_reject_from_error(item, exc)]

    def _batch(self, items: list[Item], rows: dict[int, Any]) -> list[list[Sample | Reject]] | None:
        """All items in one `process_batch` call, or None to fall back to one at a time (then an
        input that cannot be made local, or the item that breaks the batch, becomes a reject)."""
        if not hasattr(self.fn, "process_batch"):
            return None
        try:
            with contextlib.ExitStack() as stack:
                views = [stack.enter_context(self._view(it, rows)) for it in items]
                result = self.fn.process_batch(views, [sample_rng(self.ident.seed, it.index) for it in items])
                if len(result) != len(items):
                    raise RuntimeError(f"process_batch returned {len(result)} results for {len(items)} items")
                return [_records(r) for r in result]
        except Exception:
            return None

    def __call__(self, payload: dict[str, Any]) -> dict[str, Any]:
        t0 = time.perf_counter()
        out = ShardOutcome()
        items = [Item.from_json(d) for d in payload["items"]]
        rows = inputs.read_rows(items)
        batched = self._batch(items, rows)
        for k, item in enumerate(items):
            records = batched[k] if batched is not None else self._one(item, rows)
            process_item(item, records, self.ident, self.check, out)
        t1 = time.perf_counter()
        sample_table = schema.pa.Table.from_pylist(out.rows, schema=schema.SAMPLE_SCHEMA)
        reject_table = schema.pa.Table.from_pylist(out.rejects, schema=schema.REJECT_SCHEMA)
        frags = lance_io.write_uncommitted(sample_table, self.ident.out_uri, schema.SAMPLE_SCHEMA)
        rfrags = lance_io.write_uncommitted(reject_table, self.ident.rejects_uri, schema.REJECT_SCHEMA)
        return {
            "items": len(items),
            "rows": sample_table.num_rows,
            "rejects": reject_table.num_rows,
            "fragments": frags,
            "reject_fragments": rfrags,
            "digest": f"{digest.table_digest(sample_table):064x}",
            "reject_digest": f"{digest.table_digest(reject_table):064x}",
            "tasks": dict(out.tasks),
            "reasons": dict(out.reasons),
            "items_with_samples": out.items_with_samples,
            "items_rejected": out.items_rejected,
            "run_id": self.ident.run_id,
            # "encode" is the share of "generate" spent turning samples into rows (PNG encoding)
            "seconds": {"generate": t1 - t0, "encode": out.encode_seconds, "write": time.perf_counter() - t1},
        }
