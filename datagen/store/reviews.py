"""A reviewer's decision on a dataset version, stored where the dataset lives.

One review writes three things, in this order, so a crash half-way never lets training read
an approval whose flags are missing:
1. flagged sample ids, appended to `<name>_flags.lance` beside the dataset (sample_id,
   version, reason, reviewer, decided_at, review_id); a flag counts for its version only;
2. the review's lineage node (kind `review`, parent `URI@VERSION`) in
   `<uri>/_unimontage/reviews/v<VERSION>-<id>.json`;
3. the Lance tag `reviewed`: an approval moves it to the version; a rejection of the
   version it points at removes it. Training pins `URI@reviewed` through this tag and drops
   the rows flagged for the pinned version.

Nothing here imports Prefect or Ray: the review flow, the CLI and tests call it directly.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable

import lance
import pyarrow as pa
import pyarrow.compute as pc

from datagen.store import lance_io

REVIEW_TAG = "reviewed"
DECISIONS = {"approve": "approved", "reject": "rejected"}
FLAG_SCHEMA = pa.schema([
    pa.field("sample_id", pa.string()),
    pa.field("version", pa.int64()),
    pa.field("reason", pa.string()),
    pa.field("reviewer", pa.string()),
    pa.field("decided_at", pa.string()),
    pa.field("review_id", pa.string()),
])
# Reviewer text reaches cards and logs: bounded, never trusted as markup (cards escape it).
MAX_NAME, MAX_REASON, MAX_COMMENT, MAX_FLAGS = 200, 500, 4000, 10_000


@dataclass(frozen=True)
class Flag:
    sample_id: str
    reason: str


def reviews_uri(uri: str) -> str:
    return f"{lance_io.normalise_uri(uri)}/_unimontage/reviews"


def _clean(text: Any, limit: int, what: str, *, required: bool) -> str:
    value = " ".join(str(text or "").split())
    if required and not value:
        raise ValueError(f"{what} is required")
    if len(value) > limit:
        raise ValueError(f"{what} is {len(value)} characters long; at most {limit}")
    return value


def check_flags(ds: lance.LanceDataset, flags: Iterable[Flag]) -> list[Flag]:
    """Flags with clean reasons, each naming a sample of this version exactly once; anything
    else is a ValueError naming the offending ids (nothing is recorded then)."""
    flags = [Flag(str(f.sample_id).strip(), _clean(f.reason, MAX_REASON, f"reason for {f.sample_id}", required=True))
             for f in flags]
    if len(flags) > MAX_FLAGS:
        raise ValueError(f"{len(flags)} flags; at most {MAX_FLAGS} per review (reject the version instead)")
    ids = [f.sample_id for f in flags]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ValueError(f"sample id(s) flagged twice: {', '.join(twice)}")
    if ids:
        # A scan of one column, matched here: no user text is ever spliced into a query string.
        wanted, found = pa.array(ids, pa.string()), set()
        for batch in ds.to_batches(columns=["sample_id"], batch_size=65536):
            col = batch.column(0)
            found.update(col.filter(pc.is_in(col, value_set=wanted)).to_pylist())
        unknown = sorted(set(ids) - found)
        if unknown:
            raise ValueError(f"not sample ids of {ds.uri}@{ds.version}: {', '.join(unknown[:10])}"
                             f"{' ...' if len(unknown) > 10 else ''}")
    return flags


def check_decision(ds: lance.LanceDataset, *, decision: str, reviewer: str, flags: Iterable[Flag] = (),
                   comment: str = "") -> tuple[str, str, list[Flag], str]:
    """(outcome, reviewer, flags, comment), cleaned, or a ValueError saying what is wrong: run
    before anything is written, and by the review flow before it accepts a decision."""
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
    return (DECISIONS[decision], _clean(reviewer, MAX_NAME, "reviewer name", required=True), check_flags(ds, flags),
            _clean(comment, MAX_COMMENT, "comment", required=False))


def _append_flags(uri: str, flags: list[Flag], version: int, reviewer: str, decided_at: str,
                  review_id: str) -> dict[str, Any] | None:
    if not flags:
        return None
    table = pa.Table.from_pylist([{"sample_id": f.sample_id, "version": version, "reason": f.reason,
                                   "reviewer": reviewer, "decided_at": decided_at, "review_id": review_id}
                                  for f in flags], schema=FLAG_SCHEMA)
    target = lance_io.flags_uri(uri)
    mode = "append" if lance_io.exists(target) else "create"
    ds = lance.write_dataset(table, target, schema=FLAG_SCHEMA, mode=mode)
    return {"uri": target, "version": ds.version, "rows": len(flags)}


def _move_tag(uri: str, version: int, decision: str, meta: dict[str, str]) -> dict[str, Any]:
    """Approve: `reviewed` -> this version. Reject: drop the tag if it names this version."""
    tags = lance.dataset(uri).tags
    current = tags.list().get(REVIEW_TAG, {}).get("version")
    if decision == "approved":
        if current is None:
            tags.create(REVIEW_TAG, version)
            action = "created"
        elif current != version:
            tags.update(REVIEW_TAG, version)
            action = "moved"
        else:
            action = "kept"
        tags.replace_metadata(REVIEW_TAG, meta)
    elif current == version:
        tags.delete(REVIEW_TAG)
        action = "removed"
    else:
        action = "untouched"
    return {"name": REVIEW_TAG, "action": action, "before": current,
            "after": version if decision == "approved" else (None if action == "removed" else current)}


def record_review(ref: str, *, decision: str, reviewer: str, flags: Iterable[Flag] = (), comment: str = "",
                  flow_run: dict[str, Any] | None = None, shown: Iterable[str] = ()) -> dict[str, Any]:
    """Record `approve` / `reject` of `URI[@VERSION|@TAG]` by `reviewer`, with optional flags;
    returns the review's lineage node. Input is checked before anything is written."""
    uri = lance_io.normalise_uri(lance_io.resolve_ref(ref)[0])
    ds = lance_io.open_dataset(ref)
    outcome, reviewer, checked, comment = check_decision(ds, decision=decision, reviewer=reviewer, flags=flags,
                                                         comment=comment)
    decided_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    review_id = hashlib.sha256(f"{uri}@{ds.version}|{reviewer}|{decided_at}|{outcome}".encode()).hexdigest()[:12]
    flag_rec = _append_flags(uri, checked, ds.version, reviewer, decided_at, review_id)
    lineage = lance_io.read_lineage(ds) or {}
    node = {
        "kind": "review",
        "id": review_id,
        "uri": uri,
        "version": ds.version,
        "dataset": f"{uri}@{ds.version}",
        "parents": [f"{uri}@{ds.version}"],
        "content_hash": lineage.get("content_hash"),
        "decision": outcome,
        "reviewer": reviewer,
        "decided_at": decided_at,
        "comment": comment,
        "flags": flag_rec,
        "flagged": [{"sample_id": f.sample_id, "reason": f.reason} for f in checked[:50]],
        "shown": list(shown),
        "flow_run": flow_run,
    }
    record = f"{reviews_uri(uri)}/v{ds.version:09d}-{review_id}.json"
    lance_io.write_text(record, json.dumps(node, sort_keys=True))  # before the tag: the gate opens last
    node["tag"] = _move_tag(uri, ds.version, outcome, {"review_id": review_id, "reviewer": reviewer,
                                                       "decided_at": decided_at})
    lance_io.write_text(record, json.dumps(node, sort_keys=True))  # now with what the tag did
    return node


def reviews_of(uri: str, version: int | None = None) -> list[dict[str, Any]]:
    """Review nodes of a dataset (of one version when given), oldest first."""
    prefix = "" if version is None else f"v{version:09d}-"
    out = []
    for path in lance_io.list_files(reviews_uri(uri), ".json"):
        if path.rsplit("/", 1)[-1].startswith(prefix):
            text = lance_io.read_text(path)
            if text:
                out.append(json.loads(text))
    return sorted(out, key=lambda n: (n.get("decided_at", ""), n.get("id", "")))


def flagged(uri: str, version: int) -> list[dict[str, Any]]:
    """Flag rows recorded for one version (empty without a flags table)."""
    target = lance_io.flags_uri(uri)
    if not lance_io.exists(target):
        return []
    return lance.dataset(target).to_table(filter=f"version = {int(version)}").to_pylist()
