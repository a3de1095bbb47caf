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

from datagen.images import ImageRejected
from datagen.rng import sample_rng
from datagen.schema import Reject
from flows import harness, lance_io, lineage
from flows.tasks import publish

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
        make_annotator(n, **_options(n, weights)).check_weights()  # MissingWeightsError names file + folder
    return names


def _options(name: str, weights: str | None) -> dict[str, Any]:
    from datagen.conditions import ANNOTATORS

    ann = ANNOTATORS[name]()
    if not (ann.needs_weights and weights):
        return {}
    # --weights is either a root holding each backend's layout folder (Annotators/,
    # Depth-Anything-V2-Small-hf/, like $UNIMONTAGE_WEIGHTS) or one backend's own folder.
    nested = Path(weights) / ann.weights_layout
    return {"weights_dir": str(nested if ann.weights_layout and nested.is_dir() else weights)}


class ConditionsWorker:
    """Per-actor: annotators set up once; a shard's images are annotated as one batch per kind."""

    def __init__(self, seed: int, kinds: list[str], weights: str | None, images: str, multi_prob: float):
        from datagen.conditions import make_annotator

        self.seed, self.images, self.multi_prob = seed, images, multi_prob
        self.annotators = {n: make_annotator(n, **_options(n, weights)) for n in kinds}
        for ann in self.annotators.values():
            ann.setup()
        self._ds = None

    def _source(self, item: dict[str, Any]):
        from datagen.conditions import source_from_file, source_from_sample
        from datagen.schema import from_row

        if "row" not in item:
            return source_from_file(item["source"])
        if self._ds is None:
            self._ds = lance_io.open_dataset(self.images)
        try:
            sample = from_row(self._ds.take([item["row"]]).to_pylist()[0])
        except Exception as exc:  # a row that does not decode is that input's reject
            return Reject("corrupt_row", f"{type(exc).__name__}: {exc}", source=item["source"], stage="source")
        return source_from_sample(sample)

    def process_batch(self, items: list[dict[str, Any]]) -> list[list]:
        from datagen.conditions import as_rgb, make_reference_sample, pick_kinds, seg_map

        sources = [self._source(it) for it in items]
        ok = [k for k, s in enumerate(sources) if not isinstance(s, Reject)]
        maps: dict[str, dict[int, Any]] = {}
        for name, ann in self.annotators.items():
            if ann.consumes == "sample":  # seg from exact regions: only sources that have them
                maps[name] = {k: seg_map([r.mask for r in sources[k].regions if r.mask is not None],
                                         *sources[k].image.shape[:2])
                              for k in ok if sources[k].regions}
                continue
            results = ann.try_annotate([as_rgb(sources[k].image) for k in ok])
            maps[name] = dict(zip(ok, results))
        out = []
        for k, (item, src) in enumerate(zip(items, sources)):
            if isinstance(src, Reject):
                out.append([src])
                continue
            rng = sample_rng(self.seed, item["index"])
            have = {n: m for n in self.annotators if (m := maps[n].get(k)) is not None}
            failed = [m for m in have.values() if isinstance(m, ImageRejected)]
            if failed:
                out.append([Reject(failed[0].reason, failed[0].detail, source=src.source_id, stage="annotate")])
                continue
            if not have:
                out.append([Reject("no_applicable_kind", "none of the requested kinds applies to this image "
                                   "(seg needs exact regions)", source=src.source_id, stage="annotate")])
                continue
            names = pick_kinds(list(have), rng, multi_prob=self.multi_prob)
            kinds = [self.annotators[n].kind for n in names]
            out.append([make_reference_sample(src.image, src.source_id, kinds, [have[n] for n in names], src.prompt,
                                              rng, annotators=[self.annotators[n].describe() for n in names],
                                              regions=src.regions)])
        return out

    def __call__(self, item: dict[str, Any]):
        return self.process_batch([item])[0]


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
    items = [{"index": i, "source": str(p)} for i, p in enumerate(files)]
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
        config={"kinds": described, "multi_prob": multi_prob, "sources": sources},
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
