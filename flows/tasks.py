"""The steps every dataset flow runs, as Prefect tasks: plan, generate (Ray -> Lance), audit the
stored rows, publish the card, log the lineage. `flows/datasets.py` sequences them.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from compute import harness
from datagen import products
from datagen.store import lance_io, lineage
from flows import card


def current_flow_run() -> dict[str, Any] | None:
    from prefect.runtime import flow_run

    if not flow_run.id:
        return None
    return {"id": str(flow_run.id), "name": flow_run.name, "flow": flow_run.flow_name,
            "parameters": _jsonable(flow_run.parameters)}


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, (str, int, float, bool, type(None), list, dict)) else str(v)
            for k, v in (params or {}).items()}


@task(name="plan-dataset", cache_policy=NO_CACHE)
def plan_dataset(product: str, config: dict[str, Any], out: str, seed: int,
                 shard_size: int | None) -> harness.RunSpec:
    """Validate the config and run the product's plan: bad input fails here, before any work."""
    prod = products.get(product)
    spec = harness.prepare(prod, prod.make_config(config), out=out, seed=seed, shard_size=shard_size)
    get_run_logger().info("%s: planned %d inputs in %d shards of %d; %d rejected while planning", product,
                          len(spec.items), spec.num_shards, spec.shard_size, len(spec.plan.pre_rejects))
    return spec


def _worth_retrying(task, task_run, state) -> bool:
    """Bad input and a dataset busy with another run fail the same way twice: no retry."""
    from datagen.store.lance_io import ConcurrentWrite
    from datagen.store.lease import DatasetBusy

    try:
        state.result()
    except (ValueError, FileNotFoundError, DatasetBusy, ConcurrentWrite):
        return False
    except Exception:
        return True
    return False


# A retry resumes: finished shards are skipped, so a driver-side failure costs no finished shard.
@task(name="generate-dataset", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2,
      retry_condition_fn=_worth_retrying)
def generate_dataset(spec: harness.RunSpec, workers: int, progress: bool = True, item_timeout: float = 600.0,
                     overwrite: bool = False) -> harness.RunResult:
    logger = get_run_logger()
    fr = current_flow_run()
    logger.info("%s: %d inputs in %d shards -> %s (workers=%d)", spec.name, len(spec.items), spec.num_shards,
                spec.out, workers)
    result = harness.execute(spec, workers=workers, run_id=fr["id"] if fr else None, flow_run=fr, progress=progress,
                             item_timeout_s=item_timeout, overwrite=overwrite)
    if result.up_to_date:
        logger.info("dataset already holds this exact run at version %d; nothing to do", result.version)
    else:
        logger.info("committed %s@%d: %d samples, %d rejects (%d shards run, %d resumed), content %s",
                    result.uri, result.version, result.rows, result.rejects, result.ran_shards,
                    result.resumed_shards, result.content_hash[:16])
    return result


@task(name="generate-dataset-on-cluster", cache_policy=NO_CACHE)
def generate_on_cluster(address: str, product: str, config: dict[str, Any], out: str, seed: int,
                        shard_size: int | None, workers: int, item_timeout: float = 600.0,
                        overwrite: bool = False) -> harness.RunResult:
    """The run as a Ray Job on the cluster at `address` (its dashboard): plan, shards and commit
    happen there, next to the inputs; bad configuration still fails here, before submitting.
    No retries: a re-run resumes from the shards the job finished."""
    from compute import ray_jobs

    typed = products.get(product).make_config(config).to_dict()  # plain JSON: nested rules as dicts
    logger = get_run_logger()
    fr = current_flow_run()
    request = {"product": product, "config": typed, "out": out, "seed": seed, "shard_size": shard_size,
               "workers": workers, "item_timeout": item_timeout, "overwrite": overwrite,
               "run_id": fr["id"] if fr else None, "flow_run": fr}
    logger.info("%s -> %s as a Ray job on %s (workers=%d)", product, out, address, workers)
    out_json = ray_jobs.submit_run(address, request, on_log=lambda line: logger.info("[ray job] %s", line))
    result = ray_jobs.result_from_job(out_json)
    logger.info("Ray job %s committed %s@%d: %d samples, %d rejects, content %s", out_json["ray_job"], result.uri,
                result.version, result.rows, result.rejects, result.content_hash[:16])
    return result


@task(name="audit-dataset", cache_policy=NO_CACHE)
def audit_dataset(product: str, uri: str, version: int, per_task: int = 3) -> dict[str, Any]:
    """Re-decode stored rows and re-run the product's independent checker: proves the bytes on disk."""
    from datagen.schema import from_row

    check = products.get(product).check
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


@task(name="publish-card", cache_policy=NO_CACHE)
def publish_card(uri: str, version: int) -> str:
    """The card of `uri@version` as the artifact keyed by the dataset's location (one history
    per location, a version per publication)."""
    markdown = card.render_card(f"{uri}@{version}")
    key = card.artifact_key(uri)
    create_markdown_artifact(key=key, markdown=markdown,
                             description=f"Dataset card of `{lance_io.dataset_name(uri)}` version {version} at `{uri}`")
    get_run_logger().info("card of %s@%d published as artifact %r (%d bytes)", uri, version, key, len(markdown))
    return key


@task(name="log-lineage", cache_policy=NO_CACHE)
def log_lineage(ref: str) -> str:
    """The lineage nodes are already stored (in the commit, in lineage.json); this prints the
    graph above `ref` (a dataset URI@VERSION or a checkpoint) into the run's logs."""
    text = lineage.render(lineage.walk(ref))
    get_run_logger().info("lineage of %s:\n%s", ref, text)
    return text
