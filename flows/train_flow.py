"""Training as a Prefect flow: resolve dataset versions -> Ray Train (every stage) -> run card -> lineage.

Thin by design: the work is `training.job.run_training`; the flow pins what it will
read, records its flow run in the run's lineage, and publishes the run card as a keyed
artifact (`training-run-<name>`, so the UI keeps its history across resumes).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.tasks import current_flow_run, log_lineage


@task(name="resolve-dataset-versions", cache_policy=NO_CACHE)
def resolve_datasets(refs: list[str]) -> list[str]:
    """`URI[@VERSION]` -> `URI@VERSION`: the run reads exactly these, even if the datasets move on."""
    from training.index import pin

    pinned = pin(refs)
    get_run_logger().info("training on %s", ", ".join(pinned))
    return pinned


# No task retries: a lost worker is Ray Train's to restart (FailureConfig), from the last
# checkpoint; re-running the flow resumes the same run too.
@task(name="train", cache_policy=NO_CACHE)
def train_task(config: dict[str, Any], out: str) -> dict[str, Any]:
    from training.config import TrainConfig
    from training.job import run_training

    result = run_training(TrainConfig.from_dict(config), out=out, flow_run=current_flow_run())
    get_run_logger().info("run %s finished at step %d; latest checkpoint %s; attempts %s", result.run_dir,
                          result.step, result.checkpoint, result.summary()["attempts"])
    return result.summary()


@task(name="publish-run-card", cache_policy=NO_CACHE)
def publish_run_card(run_dir: str, name: str, previews: bool = True) -> str:
    from training.report import artifact_key, render_run_card

    markdown = render_run_card(run_dir, previews=previews)
    key = artifact_key(name)
    create_markdown_artifact(key=key, markdown=markdown, description=f"Training run {name} in {run_dir}")
    get_run_logger().info("run card published as artifact %r (%d bytes)", key, len(markdown))
    return key


@flow(name="publish-training-card", description="Publish the card of a training run as its keyed Prefect artifact.")
def publish_run_card_flow(run_dir: str, previews: bool = True) -> str:
    """The card of an existing run folder, published from a flow run (so the artifact links to
    it and no deprecation warning is raised), under the same key the training flow uses."""
    from training.lineage import read_node

    node = read_node(run_dir)
    if node is None:
        raise FileNotFoundError(f"no lineage.json in {run_dir}: not a training run folder")
    return publish_run_card(run_dir, node["name"], previews)


@flow(name="train", log_prints=True)
def train_flow(config: dict[str, Any] | str | None = None, datasets: list[str] | None = None, out: str = "runs",
               overrides: list[str] | None = None, previews: bool = True) -> dict[str, Any]:
    """Train UnifiedDiT on pinned Lance dataset versions with Ray Train, stage after stage."""
    from training.config import (
        TrainConfig,
        apply_overrides,
        preset_path,
        read_config_file,
    )

    raw = read_config_file(preset_path(config)) if isinstance(config, str) else dict(config or {})
    cfg = TrainConfig.from_dict(apply_overrides(raw, list(overrides or [])))
    refs = list(datasets or cfg.datasets)
    pinned = resolve_datasets(refs) if refs or not cfg.stages else []  # stages may name their own datasets
    summary = train_task(cfg.replace(datasets=pinned).to_dict(), out)
    key = publish_run_card(summary["run_dir"], summary["name"], previews)
    if summary["checkpoint"]:
        log_lineage(summary["checkpoint"])
    return summary | {"card": key}
