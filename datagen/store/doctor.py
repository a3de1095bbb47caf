"""`unimontage doctor URI`: check a dataset version and say plainly what is wrong.

Checks, in order: every fragment's data files are on storage and readable; the version has
a lineage record (or is a maintenance rewrite of one that has); the rejects table exists at
the version the lineage names and belongs to the same run; the accounting adds up
(inputs = kept + rejected); the stored rows still hash to the recorded content hash (samples
and rejects); and what storage holds beyond the committed data (staging of unfinished runs,
a live or stale lease, orphan data files).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from datagen.store import lance_io, lineage
from datagen.store.lease import Lease, _alive, STALE_AFTER_S


@dataclass
class Finding:
    level: str  # "ok" | "warn" | "error"
    check: str
    detail: str

    def line(self) -> str:
        return f"[{self.level:5}] {self.check}: {self.detail}"


def _fragments(ds) -> list[Finding]:
    bad = []
    for frag in ds.get_fragments():
        meta = json.dumps(frag.metadata.to_json())
        missing = lance_io.fragments_missing(ds.uri, [meta])
        if missing:
            bad.append(f"fragment {frag.fragment_id}: {len(missing)} data file(s) missing ({missing[0]})")
            continue
        try:
            frag.count_rows()
        except Exception as exc:  # a truncated or foreign file
            bad.append(f"fragment {frag.fragment_id}: unreadable ({type(exc).__name__}: {exc})")
    if bad:
        return [Finding("error", "fragments", f"{len(bad)} bad: " + "; ".join(bad[:3]) +
                        " - restore the files or re-run the flow with --overwrite")]
    return [Finding("ok", "fragments", f"{len(ds.get_fragments())} fragment(s), all readable")]


def _rejects(node: dict[str, Any]) -> list[Finding]:
    rej = node.get("rejects") or {}
    if not rej.get("uri"):
        return [Finding("warn", "rejects", "the lineage names no rejects table")]
    if not lance_io.exists(rej["uri"]):
        return [Finding("error", "rejects", f"{rej['uri']} is missing: {rej.get('rows')} reject row(s) are lost")]
    try:
        rds = lance_io.open_dataset(f"{rej['uri']}@{rej['version']}")
    except Exception as exc:
        return [Finding("error", "rejects", f"version {rej.get('version')} of {rej['uri']} is gone ({exc})")]
    out = []
    rnode = lance_io.read_lineage(rds) or {}
    if rnode.get("run_key") and rnode.get("run_key") != node.get("run_key"):
        out.append(Finding("error", "rejects", f"{rej['uri']}@{rej['version']} was written by another run"))
    check = lineage.verify_rows(rds, rej.get("content_hash"))
    level = "ok" if check["ok"] else "error"
    out.append(Finding(level, "rejects content", f"{check['rows']} row(s), hash {'matches' if check['ok'] else 'DIFFERS from'} "
                       f"the record ({str(check['content_hash'])[:16]})"))
    latest = lance_io.latest_version(rej["uri"])
    if latest != rej["version"]:
        out.append(Finding("warn", "rejects", f"the rejects table moved on to version {latest} (this dataset version "
                           f"pairs with {rej['version']}: read that one)"))
    return out


def _storage(uri: str) -> list[Finding]:
    out = []
    lease = Lease(uri, run_id="doctor").holder()
    if lease:
        state = "live" if _alive(lease, STALE_AFTER_S) else "stale (its run is gone; the next run takes it)"
        out.append(Finding("warn" if state != "live" else "ok", "lease", f"held by run {lease.get('run_id')}: {state}"))
    staging = lance_io.list_dirs(f"{uri}/_unimontage/staging")
    if staging:
        out.append(Finding("warn", "staging", f"{len(staging)} unfinished run(s) keep shard markers "
                           "(re-run the same config to resume, or `unimontage clean` to drop them)"))
    return out


def diagnose(ref: str, *, verify: bool = True) -> list[Finding]:
    ds = lance_io.open_dataset(ref)
    uri = lance_io.normalise_uri(lance_io.split_version(ref)[0])
    found = _fragments(ds)
    node = lance_io.read_lineage(ds)
    if node is None:
        found.append(Finding("error", "lineage", f"version {ds.version} has no UniMontage lineage record"))
        return found + _storage(uri)
    note = node.get("maintenance")
    found.append(Finding("ok", "lineage", f"made by {node.get('product')} run {node.get('run_key', '')[:12]}" +
                         (f"; maintenance {note['operations']} since version {note['content_version']}" if note else "")))
    acc = node.get("accounting") or {}
    if acc and acc.get("items") != acc.get("items_with_samples", 0) + acc.get("items_rejected", 0):
        found.append(Finding("error", "accounting", f"inputs {acc.get('items')} != with samples "
                             f"{acc.get('items_with_samples')} + rejected {acc.get('items_rejected')}"))
    elif acc:
        found.append(Finding("ok", "accounting", f"{acc.get('items')} inputs = {acc.get('items_with_samples')} with "
                             f"samples + {acc.get('items_rejected')} rejected"))
    found += _rejects(node)
    if verify:
        check = lineage.verify_rows(ds, node.get("content_hash"))
        found.append(Finding("ok" if check["ok"] else "error", "content",
                             f"{check['rows']} row(s), hash {'matches' if check['ok'] else 'DIFFERS from'} the record"))
    return found + _storage(uri)


def report(findings: list[Finding]) -> dict[str, Any]:
    worst = "error" if any(f.level == "error" for f in findings) else "warn" if any(
        f.level == "warn" for f in findings) else "ok"
    return {"status": worst, "findings": [asdict(f) for f in findings]}
