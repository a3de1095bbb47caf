"""The dataset harness every data product runs through:

    plan (items + shards) -> Ray Data actor pool -> uncommitted Lance fragments per shard
    -> one commit per run (samples and rejects) -> lineage record in the commit.

Resume: each finished shard leaves a marker (its fragments and counts) under the
dataset's staging folder, keyed by the run's config. An interrupted run, re-run with the
same config, skips finished shards and commits once: no duplicates, no gaps. A run whose
config matches the dataset's latest version does nothing and returns that version.

Nothing here is Prefect-specific; `flows/tasks.py` wraps these steps as Prefect tasks.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from tqdm import tqdm

from datagen import schema
from datagen.schema import Reject, Sample
from datagen.store import digest, lance_io, lineage
from compute.shard_runner import ItemWorker, RunIdentity, ShardRunner


@dataclass
class DatasetPlan:
    """Everything a run needs, decided on the driver before any work starts."""

    kind: str  # product, e.g. "collage"
    out: str  # Lance URI of the dataset
    seed: int
    config: dict[str, Any]  # every parameter that changes content (not workers, not out)
    items: list[dict[str, Any]]  # one dict per input: {"index": i, "source": ..., ...}; JSON-able
    make_worker: Callable[[], ItemWorker]  # picklable; called once per Ray actor
    check: Callable[[Sample], str | None] | None = None  # independent per-sample checker
    shard_size: int = 16  # fixed, never derived from workers: bytes do not depend on them
    pre_rejects: list[Reject] = field(default_factory=list)  # inputs rejected while planning
    sources: list[dict[str, Any]] = field(default_factory=list)  # lineage: uri, kind, content_hash[, ref]
    parameters: dict[str, Any] = field(default_factory=dict)  # as the user gave them (for the record)
    generator: str = ""
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    actors: bool = True  # False: stateless Ray tasks, for workers with no expensive setup

    @property
    def content_key(self) -> str:
        return lineage.config_hash({"kind": self.kind, "seed": self.seed, "config": self.config})[:32]

    @property
    def run_key(self) -> str:
        """Identity of this exact run: content config + the planned items + code package."""
        items_hash = lineage.config_hash({"items": self.items, "pre": [r.source + r.reason for r in self.pre_rejects]})
        return lineage.config_hash({"content": self.content_key, "items": items_hash,
                                    "shard_size": self.shard_size,
                                    "package": lineage.code_version()["package"]})[:32]

    def shards(self) -> dict[int, dict[str, Any]]:
        n = self.shard_size
        return {k: {"items": self.items[i:i + n]} for k, i in enumerate(range(0, len(self.items), n))}


@dataclass
class RunResult:
    uri: str
    version: int
    rows: int
    rejects: int
    rejects_uri: str
    rejects_version: int
    content_hash: str
    items: int
    resumed_shards: int
    ran_shards: int
    up_to_date: bool
    lineage: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "lineage"}


def staging_uri(out: str, run_key: str) -> str:
    return f"{lance_io.normalise_uri(out)}/_unimontage/staging/{run_key}"


def _latest_lineage(out: str) -> dict[str, Any] | None:
    if not lance_io.exists(out):
        return None
    return lance_io.read_lineage(lance_io.open_dataset(out))


def _load_markers(stage: str) -> dict[int, dict[str, Any]]:
    done = {}
    for path in lance_io.list_files(stage, ".json"):
        name = path.rsplit("/", 1)[-1]
        if name.startswith("shard-"):
            done[int(name[len("shard-"):-len(".json")])] = json.loads(lance_io.read_text(path) or "{}")
    return done


def _pre_reject_rows(plan: DatasetPlan, run_id: str) -> list[dict[str, Any]]:
    rows = []
    for k, rej in enumerate(plan.pre_rejects):
        rej.seed, rej.run_id = plan.seed, run_id
        rej.generator = rej.generator or plan.generator
        rej.reject_id = schema.make_id(plan.kind, plan.content_key, plan.seed, "pre-reject", k, rej.source)
        rows.append(schema.reject_row(rej))
    return rows


def execute(
    plan: DatasetPlan,
    *,
    workers: int = 1,
    run_id: str | None = None,
    flow_run: dict[str, Any] | None = None,
    progress: bool = True,
    max_shards: int | None = None,
) -> RunResult:
    """Run the plan to a committed dataset version (or resume / skip, see module doc).

    `max_shards` stops after that many new shards without committing: it is how tests
    and `--max-shards` simulate an interrupted run.
    """
    from compute.ray_adapter import run_shards  # Ray only when there is work

    out = lance_io.normalise_uri(plan.out)
    rej_uri = lance_io.rejects_uri(out)
    run_id = run_id or str(uuid.uuid4())
    run_key = plan.run_key
    latest = _latest_lineage(out)
    if latest and latest.get("run_key") == run_key:
        ds = lance_io.open_dataset(out)
        rej = latest.get("rejects", {})
        return RunResult(out, ds.version, latest["rows"], rej.get("rows", 0), rej_uri, rej.get("version", 0),
                         latest["content_hash"], latest["items"], 0, 0, True, latest | {"version": ds.version})

    stage = staging_uri(out, run_key)
    shards = plan.shards()
    done = {k: v for k, v in _load_markers(stage).items() if k in shards}
    todo = {k: p for k, p in shards.items() if k not in done}
    if max_shards is not None:
        todo = dict(list(todo.items())[:max_shards])
    ident = RunIdentity(plan.kind, plan.content_key, plan.seed, run_id, out, rej_uri, plan.generator)
    factory = _Factory(ident, plan.make_worker, plan.check)
    bar = tqdm(total=len(shards), initial=len(done), unit="shard", desc=f"{plan.kind} -> {lance_io.dataset_name(out)}",
               disable=not progress, dynamic_ncols=True)
    ran = 0
    for k, result in run_shards(todo, factory, workers=workers, cpus_per_worker=plan.cpus_per_worker,
                                gpus_per_worker=plan.gpus_per_worker, actors=plan.actors):
        # The marker is written only after the shard's fragments are on storage.
        lance_io.write_text(f"{stage}/shard-{k:06d}.json", json.dumps(result))
        done[k] = result
        ran += 1
        bar.update(1)
        bar.set_postfix(rows=sum(r["rows"] for r in done.values()), rejects=sum(r["rejects"] for r in done.values()))
    bar.close()
    if len(done) < len(shards):
        raise InterruptedRun(f"{len(shards) - len(done)} of {len(shards)} shards not done; re-run to resume")
    return _commit(plan, done, ran, run_id, run_key, flow_run, stage)


class InterruptedRun(RuntimeError):
    pass


class _Factory:
    """Picklable: builds the shard runner inside each Ray actor."""

    def __init__(self, ident: RunIdentity, make_worker: Callable[[], ItemWorker], check):
        self.ident, self.make_worker, self.check = ident, make_worker, check

    def __call__(self) -> ShardRunner:
        return ShardRunner(self.ident, self.make_worker, self.check)


def _commit(plan: DatasetPlan, done: dict[int, dict[str, Any]], ran: int, run_id: str, run_key: str,
            flow_run: dict[str, Any] | None, stage: str) -> RunResult:
    out = lance_io.normalise_uri(plan.out)
    rej_uri = lance_io.rejects_uri(out)
    results = [done[k] for k in sorted(done)]
    rows = sum(r["rows"] for r in results)
    total = sum(int(r["digest"], 16) for r in results) % digest.HASH_MOD

    pre_rows = _pre_reject_rows(plan, run_id)
    pre_table = schema.pa.Table.from_pylist(pre_rows, schema=schema.REJECT_SCHEMA)
    pre_frags = lance_io.write_uncommitted(pre_table, rej_uri, schema.REJECT_SCHEMA)
    rej_rows = pre_table.num_rows + sum(r["rejects"] for r in results)
    rej_digest = (digest.table_digest(pre_table) + sum(int(r["reject_digest"], 16) for r in results)) % digest.HASH_MOD
    reasons: Counter = Counter(r.reason for r in plan.pre_rejects)
    tasks: Counter = Counter()
    for r in results:
        reasons.update(r["reasons"])
        tasks.update(r["tasks"])
    rej_hash = digest.content_hash(rej_digest, rej_rows)
    rej_ds = lance_io.commit(rej_uri, schema.REJECT_SCHEMA, pre_frags + [f for r in results for f in r["reject_fragments"]],
                             {"kind": "rejects", "of": out, "run_key": run_key, "rows": rej_rows, "content_hash": rej_hash})

    items_with_samples = sum(r["items_with_samples"] for r in results)
    items_rejected = sum(r["items_rejected"] for r in results)
    run_ids = sorted({r["run_id"] for r in results} | {run_id})
    node = {
        "kind": "dataset",
        "product": plan.kind,
        "name": lance_io.dataset_name(out),
        "rows": rows,
        "content_hash": digest.content_hash(total, rows),
        "items": len(plan.items),
        "accounting": {
            "items": len(plan.items),
            "items_with_samples": items_with_samples,
            "items_rejected": items_rejected,
            "pre_rejects": len(plan.pre_rejects),
            "samples": rows,
            "rejects": rej_rows,
        },
        "counts": {"tasks": dict(sorted(tasks.items())), "reasons": dict(sorted(reasons.items()))},
        "rejects": {"uri": rej_uri, "version": rej_ds.version, "rows": rej_rows, "content_hash": rej_hash},
        "seed": plan.seed,
        "config": plan.config,
        "config_hash": lineage.config_hash(plan.config),
        "content_key": plan.content_key,
        "run_key": run_key,
        "parameters": plan.parameters,
        "run_ids": run_ids,
        "flow_runs": [flow_run] if flow_run else [],
        "code": lineage.code_version(),
        "generator": plan.generator,
        "sources": plan.sources,
        "shards": {"total": len(results), "ran": ran, "resumed": len(results) - ran, "size": plan.shard_size,
                   # summed inside the workers: what the data cost, apart from scheduling
                   "worker_seconds": round(sum(r["seconds"]["generate"] + r["seconds"]["write"] for r in results), 3),
                   "encode_seconds": round(sum(r["seconds"].get("encode", 0.0) for r in results), 3)},
        "created_at": lineage.now(),
        "env": lineage.env_summary(),
    }
    ds = lance_io.commit(out, schema.SAMPLE_SCHEMA, [f for r in results for f in r["fragments"]], node)
    lance_io.delete_dir(stage)
    return RunResult(out, ds.version, rows, rej_rows, rej_uri, rej_ds.version, node["content_hash"], len(plan.items),
                     len(results) - ran, ran, False, node | {"version": ds.version})
