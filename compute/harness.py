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

import hashlib
import json
import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

from tqdm import tqdm

from compute import assembly
from compute.shard_runner import RunIdentity, ShardRunner
from datagen import schema
from datagen.params import ProductConfig
from datagen.product import Item, Plan, Product
from datagen.store import cleanup, digest, lance_io, lineage
from datagen.store.lease import Lease

log = logging.getLogger(__name__)


@dataclass
class RunSpec:
    """Everything a run needs, decided on the driver before any work starts."""

    product: Product
    config: ProductConfig
    plan: Plan
    out: str  # Lance URI of the dataset
    seed: int
    shard_size: int  # fixed, never derived from workers: bytes do not depend on them
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0

    @property
    def name(self) -> str:
        return self.product.name

    @property
    def items(self) -> Sequence[Item]:
        return self.plan.items

    @property
    def content_key(self) -> str:
        return lineage.config_hash({"product": self.name, "seed": self.seed, "config": self.config.content(),
                                    "inputs": self.plan.content})[:32]

    @property
    def run_key(self) -> str:
        """Identity of this exact run: content config + the planned items + the code that makes the bytes."""
        h = hashlib.sha256()
        for item in self.plan.items:  # streamed: a million-item plan is hashed without a list
            h.update(json.dumps(item.to_json(), sort_keys=True).encode() + b"\n")
        for r in self.plan.pre_rejects:
            h.update(f"pre:{r.source}:{r.reason}\n".encode())
        return lineage.config_hash({"content": self.content_key, "items": h.hexdigest(),
                                    "shard_size": self.shard_size, "code": lineage.code_version()["source"]})[:32]

    @property
    def num_shards(self) -> int:
        return -(-len(self.plan.items) // self.shard_size)

    def shard_items(self, k: int) -> list[Item]:
        return list(self.plan.items[k * self.shard_size:(k + 1) * self.shard_size])

    def parameters(self) -> dict[str, Any]:
        """As the run was asked for (the record and the card): config + run options."""
        return {"out": self.out, "seed": self.seed, "shard_size": self.shard_size, **self.config.to_dict()}


def prepare(product: Product, config: ProductConfig, *, out: str, seed: int = 0,
            shard_size: int | None = None) -> RunSpec:
    """Plan a run: the product's plan on this config, checked, before any work starts."""
    size = product.shard_size_for(config) if shard_size is None else shard_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"shard size must be a whole number >= 1, got {size!r}")
    return RunSpec(product, config, product.plan(config), out, int(seed), size)


def plan_run(product: str, *, out: str, seed: int = 0, shard_size: int | None = None, **config: Any) -> RunSpec:
    """`prepare` by product name with config values as keywords (scripts, tests, benchmarks)."""
    from datagen import products

    prod = products.get(product)
    return prepare(prod, prod.make_config(config), out=out, seed=seed, shard_size=shard_size)


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


def _pre_reject_rows(spec: RunSpec, run_id: str) -> list[dict[str, Any]]:
    rows = []
    for k, rej in enumerate(spec.plan.pre_rejects):
        rej.seed, rej.run_id = spec.seed, run_id
        rej.generator = rej.generator or spec.product.generator
        rej.reject_id = schema.make_id(spec.name, spec.content_key, spec.seed, "pre-reject", k, rej.source)
        rows.append(schema.reject_row(rej))
    return rows


def execute(
    spec: RunSpec,
    *,
    workers: int = 1,
    run_id: str | None = None,
    flow_run: dict[str, Any] | None = None,
    progress: bool = True,
    max_shards: int | None = None,
    item_timeout_s: float = 600.0,
    setup_timeout_s: float = 600.0,
    overwrite: bool = False,
) -> RunResult:
    """Run the spec to a committed dataset version (or resume / skip, see module doc).

    `max_shards` stops after that many new shards without committing: it is how tests
    simulate an interrupted run. An item whose worker crashes, or that takes longer than
    `item_timeout_s` (plus `setup_timeout_s` for a worker's setup), becomes a reject row.
    A dataset of another product at `out` is replaced only with `overwrite`; a dataset being
    written by another live run is refused at once (`DatasetBusy`).
    """
    out = lance_io.normalise_uri(spec.out)
    rej_uri = lance_io.rejects_uri(out)
    run_id = run_id or str(uuid.uuid4())
    run_key = spec.run_key
    latest = _latest_lineage(out)
    _refuse_foreign(spec, out, latest, overwrite)
    if latest and latest.get("run_key") == run_key:
        ds = lance_io.open_dataset(out)
        rej = latest.get("rejects", {})
        return RunResult(out, ds.version, latest["rows"], rej.get("rows", 0), rej_uri, rej.get("version", 0),
                         latest["content_hash"], latest["items"], 0, 0, True, latest | {"version": ds.version})
    lease = Lease(out, run_id)
    lease.acquire()  # a second run on this URI stops here, at once, naming the first
    try:
        # The commit refuses to land on anything committed after these versions.
        read_versions = (lance_io.latest_version(out), lance_io.latest_version(rej_uri))
        stage = staging_uri(out, run_key)
        shards = range(spec.num_shards)
        done = _verified_markers(stage, out, rej_uri, shards)
        todo = [k for k in shards if k not in done]
        if max_shards is not None:
            todo = todo[:max_shards]
        ran = _run_todo(spec, todo, done, stage, lease, RunIdentity(spec.name, spec.content_key, spec.seed, run_id,
                                                                    out, rej_uri, spec.product.generator),
                        workers=workers, progress=progress, item_timeout_s=item_timeout_s,
                        setup_timeout_s=setup_timeout_s)
        if len(done) < len(shards):
            raise InterruptedRun(f"{len(shards) - len(done)} of {len(shards)} shards not done; re-run to resume")
        result = _commit(spec, done, ran, run_id, run_key, flow_run, stage, read_versions)
        cleanup.clean_abandoned_staging(out)  # the automatic policy: week-old abandoned staging
        return result
    finally:
        lease.release()


def _refuse_foreign(spec: RunSpec, out: str, latest: dict[str, Any] | None, overwrite: bool) -> None:
    """`--out` pointing at another product's dataset (or at data UniMontage did not make) is refused."""
    if overwrite or not lance_io.exists(out):
        return
    if latest is None:
        raise ValueError(f"{out} holds a Lance dataset without UniMontage lineage; pass --overwrite to replace it")
    if latest.get("product") != spec.name:
        raise ValueError(f"{out} holds a {latest.get('product')!r} dataset, not {spec.name!r}; pass --overwrite "
                         "to replace it with a new version, or choose another --out")


def _verified_markers(stage: str, out: str, rej_uri: str, shards: range) -> dict[int, dict[str, Any]]:
    """Finished shards whose fragments are all still on storage; a marker whose files went
    missing is dropped, so its shard runs again."""
    done = {}
    for k, marker in _load_markers(stage).items():
        if k not in shards:
            continue
        missing = (lance_io.fragments_missing(out, marker.get("fragments", []))
                   + lance_io.fragments_missing(rej_uri, marker.get("reject_fragments", [])))
        if missing:
            log.warning("shard %d: %d data file(s) of its marker are gone (%s); it runs again", k, len(missing),
                        missing[0])
            lance_io.delete_file(f"{stage}/shard-{k:06d}.json")
            continue
        done[k] = marker
    return done


def _run_todo(spec: RunSpec, todo: list[int], done: dict[int, dict[str, Any]], stage: str, lease: Lease,
              ident: RunIdentity, *, workers: int, progress: bool, item_timeout_s: float,
              setup_timeout_s: float) -> int:
    """Run the shards in `todo` and add their results to `done`; returns how many ran."""
    from compute.ray_adapter import UnitDone, run_shards  # Ray only when there is work

    factory = _Factory(ident, spec.product, spec.config, spec.plan.context, spec.plan.items, spec.shard_size)
    bar = tqdm(total=spec.num_shards, initial=len(done), unit="shard",
               desc=f"{spec.name} -> {lance_io.dataset_name(ident.out_uri)}", disable=not progress,
               dynamic_ncols=True)
    sizes = {k: len(spec.shard_items(k)) for k in todo}
    pieces: dict[int, list[dict[str, Any]]] = {k: [] for k in todo}
    failures: dict[int, list[Any]] = {k: [] for k in todo}
    covered = dict.fromkeys(todo, 0)
    ran = 0
    for event in run_shards(sizes, factory, workers=workers, cpus_per_worker=spec.cpus_per_worker,
                            gpus_per_worker=spec.gpus_per_worker, actors=spec.product.uses_actors(spec.config),
                            item_timeout_s=item_timeout_s, setup_timeout_s=setup_timeout_s):
        lease.renew()
        k = event.shard
        if isinstance(event, UnitDone):
            pieces[k].append(event.result)
            covered[k] += event.hi - event.lo
        else:
            failures[k].append(event)
            covered[k] += 1
        if covered[k] < sizes[k]:
            continue
        if failures[k]:
            shard_items = spec.shard_items(k)
            failed_items = [shard_items[f.offset] for f in failures[k]]
            pieces[k].append(assembly.failure_result(failed_items, failures[k], ident))
        result = assembly.merge(pieces.pop(k))
        # The marker is written only after the shard's fragments are on storage.
        lance_io.write_text(f"{stage}/shard-{k:06d}.json", json.dumps(result))
        done[k] = result
        ran += 1
        bar.update(1)
        bar.set_postfix(rows=sum(r["rows"] for r in done.values()), rejects=sum(r["rejects"] for r in done.values()))
    bar.close()
    return ran


def _placement(done: dict[int, dict[str, Any]]) -> dict[str, list[int]]:
    """Node id -> the shards whose items it ran (a split shard may list several nodes)."""
    where: dict[str, list[int]] = {}
    for k in sorted(done):
        for node in done[k].get("nodes", {}):
            where.setdefault(node, []).append(k)
    return where


class InterruptedRun(RuntimeError):
    pass


class _Factory:
    """Picklable: shipped once to each Ray worker, where it builds the shard runner. It holds
    the plan's items, so a shard travels as its number alone."""

    def __init__(self, ident: RunIdentity, product: Product, config: ProductConfig, context: Any,
                 items: Sequence[Item], shard_size: int):
        self.ident, self.product, self.config, self.context = ident, product, config, context
        self.items, self.shard_size = items, shard_size

    def __call__(self) -> Callable[[int, int, int], dict[str, Any]]:
        runner = ShardRunner(self.ident, self.product, self.config, self.context)

        def run(shard: int, lo: int, hi: int) -> dict[str, Any]:
            first = shard * self.shard_size
            part = self.items[first + lo:first + min(hi, self.shard_size)]
            return runner({"items": [it.to_json() for it in part]})

        return run


def _commit(spec: RunSpec, done: dict[int, dict[str, Any]], ran: int, run_id: str, run_key: str,
            flow_run: dict[str, Any] | None, stage: str, read_versions: tuple[int, int]) -> RunResult:
    out = lance_io.normalise_uri(spec.out)
    rej_uri = lance_io.rejects_uri(out)
    results = [done[k] for k in sorted(done)]
    rows = sum(r["rows"] for r in results)
    total = sum(int(r["digest"], 16) for r in results) % digest.HASH_MOD

    pre_rows = _pre_reject_rows(spec, run_id)
    pre_table = schema.pa.Table.from_pylist(pre_rows, schema=schema.REJECT_SCHEMA)
    pre_frags = lance_io.write_uncommitted(pre_table, rej_uri, schema.REJECT_SCHEMA)
    rej_rows = pre_table.num_rows + sum(r["rejects"] for r in results)
    rej_digest = (digest.table_digest(pre_table) + sum(int(r["reject_digest"], 16) for r in results)) % digest.HASH_MOD
    reasons: Counter = Counter(r.reason for r in spec.plan.pre_rejects)
    tasks: Counter = Counter()
    for r in results:
        reasons.update(r["reasons"])
        tasks.update(r["tasks"])
    rej_hash = digest.content_hash(rej_digest, rej_rows)
    rej_ds = lance_io.commit(rej_uri, schema.REJECT_SCHEMA, pre_frags + [f for r in results for f in r["reject_fragments"]],
                             {"kind": "rejects", "of": out, "run_key": run_key, "run_ids": [run_id], "rows": rej_rows,
                              "content_hash": rej_hash}, read_version=read_versions[1])

    items_with_samples = sum(r["items_with_samples"] for r in results)
    items_rejected = sum(r["items_rejected"] for r in results)
    run_ids = sorted({r["run_id"] for r in results} | {run_id})
    node = {
        "kind": "dataset",
        "product": spec.name,
        "name": lance_io.dataset_name(out),
        "rows": rows,
        "content_hash": digest.content_hash(total, rows),
        "items": len(spec.items),
        "accounting": {
            "items": len(spec.items),
            "items_with_samples": items_with_samples,
            "items_rejected": items_rejected,
            "pre_rejects": len(spec.plan.pre_rejects),
            "samples": rows,
            "rejects": rej_rows,
        },
        "counts": {"tasks": dict(sorted(tasks.items())), "reasons": dict(sorted(reasons.items()))},
        "rejects": {"uri": rej_uri, "version": rej_ds.version, "rows": rej_rows, "content_hash": rej_hash},
        "seed": spec.seed,
        "config": spec.config.to_dict(),
        "config_hash": lineage.config_hash(spec.config.to_dict()),
        "inputs": spec.plan.content,
        "content_key": spec.content_key,
        "run_key": run_key,
        "parameters": spec.parameters(),
        "run_ids": run_ids,
        "flow_runs": [flow_run] if flow_run else [],
        "code": lineage.code_version(),
        "generator": spec.product.generator,
        "sources": spec.plan.sources,
        "shards": {"total": len(results), "ran": ran, "resumed": len(results) - ran, "size": spec.shard_size,
                   # summed inside the workers: what the data cost, apart from scheduling
                   "worker_seconds": round(sum(r["seconds"]["generate"] + r["seconds"]["write"] for r in results), 3),
                   "encode_seconds": round(sum(r["seconds"].get("encode", 0.0) for r in results), 3),
                   "split": sum(1 for r in results if r.get("pieces", 1) > 1),  # shards bisected after a fault
                   "placement": _placement(done)},
        "created_at": lineage.now(),
        "env": lineage.env_summary(),
    }
    committed = lance_io.commit(out, schema.SAMPLE_SCHEMA, [f for r in results for f in r["fragments"]], node,
                                read_version=read_versions[0])
    lance_io.delete_dir(stage)
    # One fragment per shard reads slowly at scale: a maintenance commit merges them (the
    # lineage of the version it makes is the content version's, see lance_io.read_lineage).
    ds = lance_io.compact_if_fragmented(out)
    lance_io.compact_if_fragmented(rej_uri)
    return RunResult(out, ds.version, rows, rej_rows, rej_uri, rej_ds.version, node["content_hash"], len(spec.items),
                     len(results) - ran, ran, False,
                     node | {"version": ds.version, "content_version": committed.version})
