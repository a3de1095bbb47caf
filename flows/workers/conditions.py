"""Conditions worker: annotators set up once per actor; a shard is annotated as one batch per kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datagen.images import ImageRejected
from datagen.rng import sample_rng
from datagen.schema import Reject
from datagen.store import lance_io


def annotator_options(name: str, weights: str | None) -> dict[str, Any]:
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
        self.annotators = {n: make_annotator(n, **annotator_options(n, weights)) for n in kinds}
        for ann in self.annotators.values():
            ann.setup()
        self._ds = None

    def _source(self, item: dict[str, Any]):
        from datagen.conditions import source_from_file, source_from_sample
        from datagen.schema import from_row

        if "row" not in item:
            return source_from_file(item["source"], source_id=item.get("source_id"))
        if self._ds is None:
            self._ds = lance_io.open_dataset(self.images)
        try:
            sample = from_row(self._ds.take([item["row"]]).to_pylist()[0])
        except Exception as exc:  # a row that does not decode is that input's reject
            return Reject("corrupt_row", f"{type(exc).__name__}: {exc}", source=item["source"], stage="source")
        return source_from_sample(sample)

    def process_batch(self, items: list[dict[str, Any]]) -> list[list]:
        from datagen.conditions import (
            as_rgb,
            make_reference_sample,
            pick_kinds,
            seg_map,
        )

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
