"""Collage edit pairs (DreamOmni): plan -> Ray -> Lance -> audit -> card -> lineage."""

from __future__ import annotations

from functools import partial
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from compute import harness
from datagen.store import lance_io
from flows.tasks import generate_dataset, publish_card, record_lineage
from flows.workers.collage import CollageWorker

DEFAULT_SIZE = 512


def parse_tasks(tasks: str | list[str] | None) -> list[str]:
    from datagen.collage import TASKS

    if not tasks:
        return list(TASKS)
    wanted = [t.strip() for t in (tasks.split(",") if isinstance(tasks, str) else tasks) if t.strip()]
    expanded: list[str] = []
    for t in wanted:
        # "drag" selects drag.translate|scale|rotate; an exact name selects itself.
        match = [name for name in TASKS if name == t or name.startswith(t + ".")]
        if not match:
            raise ValueError(f"unknown collage task {t!r}; choose from: {', '.join(TASKS)}")
        expanded += [m for m in match if m not in expanded]
    return expanded


def plan_collage(out: str, num: int, seed: int, tasks: list[str], size: int, assets: str | None,
                 shard_size: int = 16) -> harness.DatasetPlan:
    from datagen.collage import check, load_assets, starter_pack

    if num < 1:
        raise ValueError("--num must be at least 1")
    if size < 64:
        raise ValueError("--size must be at least 64 px")
    if assets:
        pack, pre_rejects = load_assets(assets)  # raises before any work when nothing usable is there
        source_uri = lance_io.normalise_uri(assets)
    else:
        pack, pre_rejects = starter_pack(), []
        source_uri = "embedded:starter-pack"
    items = [{"index": i, "task": tasks[i % len(tasks)]} for i in range(num)]
    config = {"tasks": tasks, "size": size, "assets": pack.content_hash()}
    return harness.DatasetPlan(
        kind="collage",
        out=out,
        seed=seed,
        config=config,
        items=items,
        make_worker=partial(CollageWorker, pack, size, seed),
        check=check,
        shard_size=shard_size,
        pre_rejects=pre_rejects,
        sources=[{"kind": "assets", "uri": source_uri, "content_hash": pack.content_hash(),
                  "files": len(pack.sources())}],
        parameters={"out": out, "num": num, "seed": seed, "tasks": tasks, "size": size, "assets": assets},
        generator="datagen.collage",
    )


@task(name="plan-collage", cache_policy=NO_CACHE)
def plan_task(out: str, num: int, seed: int, tasks: list[str], size: int, assets: str | None,
              shard_size: int) -> harness.DatasetPlan:
    plan = plan_collage(out, num, seed, tasks, size, assets, shard_size)
    get_run_logger().info("planned %d samples over %d tasks; %d asset files rejected", num, len(tasks),
                          len(plan.pre_rejects))
    return plan


@task(name="audit-collage", cache_policy=NO_CACHE)
def audit_task(uri: str, version: int, per_task: int = 3) -> dict[str, Any]:
    """Re-decode stored rows and re-run the independent checker: proves the bytes on disk."""
    from datagen.collage import check
    from datagen.schema import from_row

    ds = lance_io.open_dataset(f"{uri}@{version}")
    tasks = ds.to_table(columns=["task"]).column("task").to_pylist()
    picked: dict[str, list[int]] = {}
    for pos, t in enumerate(tasks):
        if len(picked.setdefault(t, [])) < per_task:
            picked[t].append(pos)
    positions = sorted(p for ps in picked.values() for p in ps)
    failures = []
    for row in ds.take(positions).to_pylist() if positions else []:
        reason = check(from_row(row))
        if reason:
            failures.append({"sample_id": row["sample_id"], "task": row["task"], "reason": reason})
    report = {"checked": len(positions), "failed": len(failures), "failures": failures[:20]}
    get_run_logger().info("audit: %d stored samples re-checked, %d failed", len(positions), len(failures))
    if failures:
        raise RuntimeError(f"stored samples fail the checker: {failures[:3]}")
    return report


@flow(name="collage-dataset", log_prints=True)
def collage_flow(out: str, num: int = 100, seed: int = 0, tasks: list[str] | None = None,
                 size: int = DEFAULT_SIZE, workers: int = 1, assets: str | None = None,
                 shard_size: int = 16, progress: bool = True) -> dict[str, Any]:
    """Collage edit pairs for every DreamOmni task family into a Lance dataset."""
    task_list = parse_tasks(tasks)
    plan = plan_task(out, num, seed, task_list, size, assets, shard_size)
    result = generate_dataset(plan, workers, progress)
    audit = audit_task(result.uri, result.version)
    key = publish_card(result.uri, result.version)
    record_lineage(result.uri, result.version)
    return result.summary() | {"card": key, "audit": audit}
