"""Multi-view samples from posed captures: plan captures -> Ray -> Lance -> card -> lineage."""

from __future__ import annotations

from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from compute import harness
from datagen.store import lineage
from flows import scorer_specs
from flows.tasks import publish
from flows.workers.multiview import MultiviewWorker

DEFAULT_SCORERS = "sharpness,exposure,geometry,diversity"


def find_captures(root: str | Path) -> list[Path]:
    """Capture folders under `root`: any folder holding `images/` (MVImageNet) or
    `frame_annotations.jgz` (CO3D); `root` itself may be one."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--captures {root} is not a folder")
    marks = ("images", "frame_annotations.jgz", "sparse")
    found = sorted({p.parent for m in marks for p in root.rglob(m)} | ({root} if any((root / m).exists() for m in marks) else set()))
    # A CO3D category folder holds many sequences; keep the outermost capture roots only.
    roots = [p for p in found if not any(q != p and q in p.parents for q in found)]
    if not roots:
        raise ValueError(f"no captures under {root}: expected folders with images/ + sparse/0 (MVImageNet/COLMAP) "
                         "or frame_annotations.jgz (CO3D)")
    return roots


def plan_multiview(out: str, captures: str, seed: int, config: dict[str, Any], scorers: str | None,
                   shard_size: int = 2) -> harness.DatasetPlan:
    from datagen.multiview import MultiviewConfig

    specs = scorer_specs.parse(scorers)
    scorer_specs.check_weights(specs)
    cfg = asdict(MultiviewConfig(**config))
    roots = find_captures(captures)
    items = [{"index": i, "source": str(p)} for i, p in enumerate(roots)]
    srcs = [{"kind": "capture", "uri": str(p), "content_hash": lineage.dir_hash(p)} for p in roots]
    return harness.DatasetPlan(
        kind="multiview", out=out, seed=seed,
        config={"multiview": cfg, "scorers": specs, "captures": [s["content_hash"] for s in srcs]},
        items=items, make_worker=partial(MultiviewWorker, seed, cfg, specs), shard_size=shard_size, sources=srcs,
        parameters={"out": out, "captures": captures, "seed": seed, "config": config, "scorers": scorers},
        generator="datagen.multiview")


@task(name="plan-multiview", cache_policy=NO_CACHE)
def plan_task(out: str, captures: str, seed: int, config: dict[str, Any], scorers: str | None) -> harness.DatasetPlan:
    plan = plan_multiview(out, captures, seed, config, scorers)
    get_run_logger().info("planned %d captures", len(plan.items))
    return plan


@flow(name="multiview-dataset", log_prints=True)
def multiview_flow(out: str, captures: str, seed: int = 0, per_capture: int = 2, max_extra: int = 4,
                   scorers: str | None = DEFAULT_SCORERS, min_geo: float | None = None, workers: int = 1,
                   progress: bool = True) -> dict[str, Any]:
    """Reference view -> 1-4 further views with the camera motion in words, scored."""
    config: dict[str, Any] = {"samples_per_capture": per_capture, "max_extra": max_extra}
    if min_geo is not None:
        config["min_scores"] = {"geo_consistency": min_geo}
    plan = plan_task(out, captures, seed, config, scorers)
    result, key = publish(plan, workers, progress)
    return result.summary() | {"card": key}
