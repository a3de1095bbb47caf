"""Condition-reference samples: condition map(s) + prompt -> the source image.

Sources: a folder of images (captions from `<stem>.txt`) or any UniMontage Lance dataset
(each row's first output image, with its exact regions for `seg`). Model-backed
annotators run in a Ray actor pool (weights loaded once per actor); when every requested
kind is classical the shards run as stateless Ray tasks.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from compute import harness
from datagen.store import lance_io, lineage
from flows.tasks import publish
from flows.workers.conditions import ConditionsWorker, annotator_options

# User-facing kind -> registered annotator. Other registered names are accepted as they are.
ALIASES = {"pose": "openpose", "depth": "depth_anything", "seg": "seg_regions", "softedge": "hed"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


def resolve_kinds(kinds: str | list[str], weights: str | None) -> list[str]:
    """Annotator names for `--kinds`, checked (weights included) before any work."""
    from datagen.conditions import ANNOTATORS, make_annotator

    names = [ALIASES.get(k.strip(), k.strip()) for k in (kinds.split(",") if isinstance(kinds, str) else kinds)]
    names = [n for n in dict.fromkeys(names) if n]
    if not names:
        raise ValueError("--kinds is empty")
    for n in names:
        if n not in ANNOTATORS:
            raise ValueError(f"unknown condition kind {n!r}; known: {', '.join(sorted(set(ANNOTATORS) | set(ALIASES)))}")
        make_annotator(n, **annotator_options(n, weights)).check_weights()  # MissingWeightsError names file + folder
    return names


def plan_items(images: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """Items and lineage sources for a folder of images or a Lance dataset (pinned to a version)."""
    base, _ = lance_io.split_version(images)
    if base.endswith(".lance") or lance_io.exists(base):
        ds = lance_io.open_dataset(images)
        ref = f"{lance_io.normalise_uri(base)}@{ds.version}"
        node = lance_io.read_lineage(ds) or {}
        items = [{"index": i, "row": i, "source": f"{ref}#{i}"} for i in range(ds.count_rows())]
        return items, [{"kind": "dataset", "ref": ref, "uri": ref, "content_hash": node.get("content_hash")}], ref
    root = Path(images)
    if not root.is_dir():
        raise FileNotFoundError(f"--images {images} is neither a Lance dataset nor a folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"--images {images}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in the folder")
    items = [{"index": i, "source": str(p), "source_id": p.relative_to(root).as_posix()} for i, p in enumerate(files)]
    return items, [{"kind": "images", "uri": str(root.resolve()), "content_hash": lineage.dir_hash(root),
                    "files": len(files)}], str(root.resolve())


def plan_conditions(out: str, images: str, kinds: str | list[str], weights: str | None, seed: int,
                    multi_prob: float = 0.3, shard_size: int = 16) -> harness.DatasetPlan:
    from datagen.conditions import ANNOTATORS

    names = resolve_kinds(kinds, weights)
    items, sources, pinned = plan_items(images)
    described = {n: ANNOTATORS[n]().version for n in names}
    needs_model = any(ANNOTATORS[n]().needs_weights for n in names)
    return harness.DatasetPlan(
        kind="conditions", out=out, seed=seed,
        # sources by content, not location: the same images elsewhere give the same sample ids
        config={"kinds": described, "multi_prob": multi_prob,
                "sources": [s.get("content_hash") or s["uri"] for s in sources]},
        items=items, make_worker=partial(ConditionsWorker, seed, names, weights, pinned, multi_prob), shard_size=shard_size,
        sources=sources, actors=needs_model,
        parameters={"out": out, "images": images, "kinds": names, "weights": weights, "seed": seed,
                    "multi_prob": multi_prob},
        generator="datagen.conditions")


@task(name="plan-conditions", cache_policy=NO_CACHE)
def plan_task(out: str, images: str, kinds: str, weights: str | None, seed: int, multi_prob: float) -> harness.DatasetPlan:
    plan = plan_conditions(out, images, kinds, weights, seed, multi_prob)
    get_run_logger().info("planned %d images; annotators %s; %s", len(plan.items), plan.parameters["kinds"],
                          "actor pool" if plan.actors else "tasks")
    return plan


@flow(name="conditions-dataset", log_prints=True)
def conditions_flow(out: str, images: str, kinds: str = "canny,lineart_standard,seg", weights: str | None = None,
                    seed: int = 0, multi_prob: float = 0.3, workers: int = 1, progress: bool = True) -> dict[str, Any]:
    """ControlNet condition maps and condition-reference samples (map(s) + prompt -> image)."""
    plan = plan_task(out, images, kinds, weights, seed, multi_prob)
    result, key = publish(plan, workers, progress)
    return result.summary() | {"card": key}
