"""The conditions product: condition map(s) + prompt -> the source image, declared once.

Sources: a folder of images on local disk or object storage (captions from `<stem>.txt`),
each item a "file" input the harness makes local; or any UniMontage Lance dataset, pinned
to a version, each item a "row" input the harness reads (one `take` per shard) and this
product decodes (its first output image, with its exact regions for `seg` where they cover
every object: see `SEGMENTED_TASKS`). With `with_references`, a stored row made from reference
images alone (role "reference", maybe beside a blank canvas: collage ref.subject*, ref.canvas,
storyboards, multi-view) keeps them as inputs: reference(s) + map(s) -> the image, task
`ref.conditioned` (iMontage).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from datagen.conditions.base import ANNOTATORS, Annotator, make_annotator
from datagen.conditions.reference import (
    ReferenceSource,
    make_reference_sample,
    pick_kinds,
    source_from_file,
    source_from_sample,
)
from datagen.conditions.seg_from_regions import seg_map
from datagen.images import ImageRejected, to_rgb
from datagen.params import ProductConfig, param
from datagen.product import INPUT_FILE, INPUT_ROW, Item, ItemRange, Plan, Product
from datagen.schema import Reject, from_row

# User-facing kind -> registered annotator. Other registered names are accepted as they are.
ALIASES = {"pose": "openpose", "depth": "depth_anything", "seg": "seg_regions", "softedge": "hed"}
# Stored tasks whose output regions cover every object in the image: only there is a map of
# the regions a segmentation map. Elsewhere regions mark what an edit touched (the added
# object, an inpainting hole, an outpainted strip, a drawn box), and a map of them would
# misdescribe the image it is paired with.
SEGMENTED_TASKS = ("t2i.text", "t2i.shapes", "t2i.layout", "ref.")


def resolve_kinds(kinds: tuple[str, ...]) -> tuple[str, ...]:
    """Registered annotator names for `--kinds` (aliases resolved, duplicates dropped)."""
    names = tuple(dict.fromkeys(n for n in (ALIASES.get(k.strip(), k.strip()) for k in kinds) if n))
    if not names:
        raise ValueError("--kinds is empty")
    for n in names:
        if n not in ANNOTATORS:
            known = ", ".join(sorted(set(ANNOTATORS) | set(ALIASES)))
            raise ValueError(f"unknown condition kind {n!r}; known: {known}")
    return names


@dataclass(frozen=True)
class ConditionsConfig(ProductConfig):
    images: str = param(help="A folder of images (local or s3://...; captions from <stem>.txt) or a UniMontage "
                        "Lance dataset URI or URI@VERSION (each row's first output image).", content=False)
    kinds: tuple[str, ...] = param(("canny", "lineart_standard", "seg"),
                                   "Condition kinds: canny, lineart_standard, seg (exact regions, from Lance rows "
                                   "whose regions cover every object: t2i and ref) need no weights; lineart, "
                                   "lineart_coarse, hed, pose (openpose), openpose_full, depth (Depth-Anything-V2) "
                                   "and other controlnet_aux annotators need --weights.")
    weights: str | None = param(None, "Local weights: a root holding Annotators/ (controlnet_aux layout) and "
                                "Depth-Anything-V2-Small-hf/, or one of those folders.", content=False)
    multi_prob: float = param(0.3, "Probability that a sample combines 2-3 maps.", min=0.0, max=1.0)
    with_references: bool = param(False, "Lance rows made from reference images alone (collage ref.subject*, "
                                  "ref.canvas, storyboards, multi-view) keep them as inputs: reference(s) + map(s) "
                                  "-> image, task ref.conditioned (iMontage's conditioned reference).")

    def validate(self) -> None:
        object.__setattr__(self, "kinds", resolve_kinds(self.kinds))


def make_annotators(kinds: tuple[str, ...], weights: str | None) -> dict[str, Annotator]:
    """One annotator per kind. `--weights` is either a root holding each backend's layout
    folder (Annotators/, Depth-Anything-V2-Small-hf/, like $UNIMONTAGE_WEIGHTS) or one
    backend's own folder."""
    made = {}
    for name in kinds:
        ann = make_annotator(name)
        if ann.needs_weights and weights:
            nested = Path(weights) / ann.weights_layout
            ann = make_annotator(name, weights_dir=str(nested if ann.weights_layout and nested.is_dir() else weights))
        made[name] = ann
    return made


def needs_models(cfg: ConditionsConfig) -> bool:
    """Model-backed kinds load weights once per actor; classical ones run in stateless tasks."""
    return any(ANNOTATORS[n]().needs_weights for n in cfg.kinds)


# --------------------------------------------------------------------------- plan
def _row_item(ref: str, index: int) -> Item:
    return Item(index, source=f"{ref}#{index}", input=INPUT_ROW)


def _plan_rows(images: str) -> tuple[Any, list[dict[str, Any]], str | None]:
    from datagen.store import lance_io

    base, _ = lance_io.split_version(images)
    ds = lance_io.open_dataset(images)
    ref = f"{lance_io.normalise_uri(base)}@{ds.version}"
    node = lance_io.read_lineage(ds) or {}
    source = {"kind": "dataset", "ref": ref, "uri": ref, "content_hash": node.get("content_hash")}
    return ItemRange(ds.count_rows(), partial(_row_item, ref)), [source], node.get("content_hash") or ref


def _plan_folder(images: str) -> tuple[list[Item], list[dict[str, Any]], str, list[Reject]]:
    from datagen.conditions.image_folder import list_images
    from datagen.store import lineage

    folder = list_images(images)
    items = [Item(i, source=f.uri, data={"source_id": f.name, **({"prompt": f.caption} if f.caption else {})},
                  input=INPUT_FILE) for i, f in enumerate(folder.files)]
    # By content, not location: the same images elsewhere give the same sample ids. A remote
    # folder is identified by its listing (names, sizes, captions) rather than downloaded twice.
    content_hash = lineage.dir_hash(folder.root) if folder.local else None
    source = {"kind": "images", "uri": folder.root, "content_hash": content_hash, "files": len(items)}
    if not folder.local:
        source["listing_hash"] = folder.listing_hash()
    return items, [source], content_hash or source["listing_hash"], [r.reject() for r in folder.refused]


def preflight(cfg: ConditionsConfig) -> dict:
    """The annotators, their weight files checked (MissingWeights names file and folder)."""
    annotators = make_annotators(cfg.kinds, cfg.weights)
    for ann in annotators.values():
        ann.check_weights()
    return annotators


def plan(cfg: ConditionsConfig) -> Plan:
    from datagen.store import lance_io

    annotators = preflight(cfg)
    base, _ = lance_io.split_version(cfg.images)
    is_dataset = base.endswith(".lance") or lance_io.exists(base)
    items, sources, identity, refused = (*_plan_rows(cfg.images), []) if is_dataset else _plan_folder(cfg.images)
    return Plan(items=items, sources=sources, pre_rejects=refused,
                content={"images": identity, "annotators": {n: a.version for n, a in annotators.items()}})


# --------------------------------------------------------------------------- per item
def _seg_or_reject(src: ReferenceSource) -> np.ndarray | ImageRejected:
    try:
        return seg_map([r.mask for r in src.regions if r.mask is not None], *src.image.shape[:2])
    except ImageRejected as exc:
        return exc


class ConditionsItems:
    """Per worker: annotators set up once; an item's image is annotated by every kind, then
    one sample picks a kind or a combination of kinds."""

    def __init__(self, cfg: ConditionsConfig, context: Any = None):
        self.multi_prob = cfg.multi_prob
        self.with_references = cfg.with_references
        self.annotators = make_annotators(cfg.kinds, cfg.weights)
        for ann in self.annotators.values():
            ann.setup()

    def _source(self, item: Item) -> tuple[ReferenceSource | Reject, bool]:
        """The image to annotate, and whether its regions segment it completely."""
        if item.input == INPUT_ROW:
            try:
                sample = from_row(item.row)  # type: ignore[arg-type]
            except Exception as exc:  # a stored row that does not decode is that input's reject
                return Reject("corrupt_row", f"{type(exc).__name__}: {exc}", source=item.source, stage="source"), False
            src = source_from_sample(sample, references=self.with_references)
            return src, sample.task.startswith(SEGMENTED_TASKS)
        src = source_from_file(item.path, caption_suffix=None, source_id=item.data.get("source_id"),
                               prompt=item.data.get("prompt"))
        if isinstance(src, Reject):
            src.source = item.source  # the file as planned, not the harness's local copy
        return src, False

    def _maps(self, sources: list[ReferenceSource | Reject], segmented: list[bool]) -> dict[str, dict[int, Any]]:
        """Per kind: source position -> map or ImageRejected (absent: the kind does not apply)."""
        good = {k: s for k, s in enumerate(sources) if isinstance(s, ReferenceSource)}
        maps: dict[str, dict[int, Any]] = {}
        for name, ann in self.annotators.items():
            if ann.consumes == "sample":  # seg from exact regions: only sources segmented by them
                maps[name] = {k: _seg_or_reject(src) for k, src in good.items() if segmented[k] and src.regions}
                continue
            results = ann.try_annotate([to_rgb(src.image, alpha="white") for src in good.values()])
            maps[name] = dict(zip(good, results))
        return maps

    def annotate(self, items: list[Item], rngs: list[np.random.Generator]) -> list[list[Any]]:
        """Records per item; every kind maps the items' images as one batch."""
        sources, segmented = zip(*(self._source(it) for it in items))
        maps = self._maps(list(sources), list(segmented))
        out: list[list[Any]] = []
        for k, (src, rng) in enumerate(zip(sources, rngs)):
            if isinstance(src, Reject):
                out.append([src])
                continue
            have = {n: m for n in self.annotators if (m := maps[n].get(k)) is not None}
            failed = [m for m in have.values() if isinstance(m, ImageRejected)]
            if failed:
                out.append([Reject(failed[0].reason, failed[0].detail, source=src.source_id, stage="annotate")])
                continue
            if not have:
                out.append([Reject("no_applicable_kind", "none of the requested kinds applies to this image "
                                   "(seg needs regions that cover every object)", source=src.source_id,
                                   stage="annotate")])
                continue
            names = pick_kinds(list(have), rng, multi_prob=self.multi_prob)
            out.append([make_reference_sample(
                src.image, src.source_id, [self.annotators[n].kind for n in names], [have[n] for n in names],
                src.prompt, rng, annotators=[self.annotators[n].describe() for n in names], regions=src.regions,
                references=src.references, reference_regions=src.reference_regions)])
        return out

    def __call__(self, item: Item, rng: np.random.Generator) -> list[Any]:
        return self.annotate([item], [rng])[0]


class BatchedConditionsItems(ConditionsItems):
    """Model-backed kinds: the harness hands a shard's items in one call, so each model sees
    a batch (what pays on a GPU). Classical kinds gain nothing from batching and go one item
    at a time, so a worker holds one decoded image, not a shard's worth."""

    def process_batch(self, items: list[Item], rngs: list[np.random.Generator]) -> list[list[Any]]:
        return self.annotate(items, rngs)


def setup(cfg: ConditionsConfig, context: Any = None) -> ConditionsItems:
    return (BatchedConditionsItems if needs_models(cfg) else ConditionsItems)(cfg, context)


PRODUCT = Product(
    name="conditions",
    summary="Condition-reference samples: ControlNet condition map(s) + prompt -> the source image; with "
            "--with-references, reference image(s) + map(s) -> image.",
    config=ConditionsConfig,
    plan=plan,
    setup=setup,
    generator="datagen.conditions",
    # ~70-150 ms per image at the default kinds (256-1024 px, measured on 2 shared cores):
    # a shard of 128 is 10-20 s of one worker's time.
    shard_size=128,
    preflight=preflight,
    reuse_setup=needs_models,
)
