"""Prefect tasks shared by every dataset flow: generate (Ray -> Lance), publish the card,
log the lineage. Product flows only plan and sequence these.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from compute import harness
from datagen.store import lineage
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


# A retry resumes: finished shards are skipped, so a worker lost mid-run costs one shard.
@task(name="generate-dataset", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def generate_dataset(plan: harness.DatasetPlan, workers: int, progress: bool = True) -> harness.RunResult:
    logger = get_run_logger()
    fr = current_flow_run()
    logger.info("%s: %d inputs in %d shards -> %s (workers=%d)", plan.kind, len(plan.items),
                len(plan.shards()), plan.out, workers)
    result = harness.execute(plan, workers=workers, run_id=fr["id"] if fr else None, flow_run=fr,
                             progress=progress)
    if result.up_to_date:
        logger.info("dataset already holds this exact run at version %d; nothing to do", result.version)
    else:
        logger.info("committed %s@%d: %d samples, %d rejects (%d shards run, %d resumed), content %s",
                    result.uri, result.version, result.rows, result.rejects, result.ran_shards,
                    result.resumed_shards, result.content_hash[:16])
    return result


@task(name="publish-card", cache_policy=NO_CACHE)
def publish_card(uri: str, version: int) -> str:
    markdown = card.render_card(f"{uri}@{version}")
    key = card.artifact_key(uri)
    create_markdown_artifact(key=key, markdown=markdown, description=f"Dataset card of {uri}@{version}")
    get_run_logger().info("card published as artifact %r (%d bytes)", key, len(markdown))
    return key


@task(name="record-lineage", cache_policy=NO_CACHE)
def record_lineage(uri: str, version: int) -> str:
    """The lineage node is already in the commit; this prints the graph into the run's logs."""
    text = lineage.render(lineage.walk(f"{uri}@{version}"))
    get_run_logger().info("lineage of %s@%d:\n%s", uri, version, text)
    return text


def publish(plan: harness.DatasetPlan, workers: int, progress: bool = True) -> tuple[harness.RunResult, str]:
    """The shared tail of every dataset flow: generate -> card -> lineage."""
    result = generate_dataset(plan, workers, progress)
    key = publish_card(result.uri, result.version)
    record_lineage(result.uri, result.version)
    return result, key
