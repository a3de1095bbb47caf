"""A shard's result from its pieces: the ranges its workers finished, plus a reject row for
every item whose worker crashed or timed out (the Ray adapter bisected the shard to find it).

A shard normally finishes in one piece; after a crash it may finish in several. Either way
its result has one shape (fragments, digests, counts), so markers, resume and the commit
never need to know how the shard was split, and its bytes do not depend on it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from compute.shard_runner import RunIdentity, ShardOutcome, process_item
from datagen import schema
from datagen.product import Item
from datagen.schema import Reject
from datagen.store import digest, lance_io


def failure_result(items: list[Item], failures: list[Any], ident: RunIdentity) -> dict[str, Any]:
    """Reject rows (written as uncommitted fragments) for items that never produced a result;
    `failures` are the Ray adapter's `ItemFailed` events for `items`, in the same order."""
    out = ShardOutcome()
    for item, f in zip(items, failures):
        rej = Reject(f.reason, f.detail, source=item.source, task=str(item.data.get("task", "")), stage="worker")
        process_item(item, [rej], ident, None, out)
    table = schema.pa.Table.from_pylist(out.rejects, schema=schema.REJECT_SCHEMA)
    return {"items": len(items), "rows": 0, "rejects": table.num_rows, "fragments": [],
            "reject_fragments": lance_io.write_uncommitted(table, ident.rejects_uri, schema.REJECT_SCHEMA),
            "digest": f"{0:064x}", "reject_digest": f"{digest.table_digest(table):064x}", "tasks": {},
            "reasons": dict(out.reasons), "items_with_samples": 0, "items_rejected": out.items_rejected,
            "run_id": ident.run_id, "seconds": {"generate": 0.0, "encode": 0.0, "write": 0.0}}


def merge(pieces: list[dict[str, Any]]) -> dict[str, Any]:
    """One shard result from its pieces (digests add: the content hash is order-independent)."""
    tasks: Counter = Counter()
    reasons: Counter = Counter()
    nodes: Counter = Counter()
    for p in pieces:
        tasks.update(p["tasks"])
        reasons.update(p["reasons"])
        if p.get("where"):
            nodes[p["where"]["node_id"]] += p["items"]
    total = lambda key: sum(p[key] for p in pieces)  # noqa: E731
    hexsum = lambda key: f"{sum(int(p[key], 16) for p in pieces) % digest.HASH_MOD:064x}"  # noqa: E731
    return {
        "items": total("items"), "rows": total("rows"), "rejects": total("rejects"),
        "fragments": [f for p in pieces for f in p["fragments"]],
        "reject_fragments": [f for p in pieces for f in p["reject_fragments"]],
        "digest": hexsum("digest"), "reject_digest": hexsum("reject_digest"),
        "tasks": dict(tasks), "reasons": dict(reasons),
        "items_with_samples": total("items_with_samples"), "items_rejected": total("items_rejected"),
        "run_id": pieces[0]["run_id"],
        "seconds": {k: sum(p["seconds"].get(k, 0.0) for p in pieces) for k in ("generate", "encode", "write")},
        "pieces": len(pieces),
        "nodes": dict(nodes),  # node id -> items it ran: where the shard's work happened
    }
