"""The multi-view product: reference view -> 1-4 further views, camera motion in words, scored.

One item per capture folder. A capture is a folder (views + pose files), not one file, so
items name local folders and the harness has nothing to copy (`input` is empty); the
samples name views by "<category>/<object>/<file>", never by absolute path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from datagen.multiview.config import MultiviewConfig
from datagen.multiview.samples import multiview_samples
from datagen.product import Item, Plan, Product
from datagen.scoring import specs

CAPTURE_MARKS = ("images", "frame_annotations.jgz", "sparse")


def find_captures(root: str | Path) -> list[Path]:
    """Capture folders under `root`: any folder holding `images/` (MVImageNet) or
    `frame_annotations.jgz` (CO3D); `root` itself may be one."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--captures {root} is not a folder")
    found = {p.parent for m in CAPTURE_MARKS for p in root.rglob(m)}
    if any((root / m).exists() for m in CAPTURE_MARKS):
        found.add(root)
    # A CO3D category folder holds many sequences; keep the outermost capture roots only.
    roots = sorted(p for p in found if not any(q != p and q in p.parents for q in found))
    if not roots:
        raise ValueError(f"no captures under {root}: expected folders with images/ + sparse/0 (MVImageNet/COLMAP) "
                         "or frame_annotations.jgz (CO3D)")
    return roots


def preflight(cfg: MultiviewConfig) -> None:
    specs.check_weights(cfg.scorer_specs)  # MissingWeights names the file and the folder, before any work


def plan(cfg: MultiviewConfig) -> Plan:
    from datagen.store import lineage

    preflight(cfg)
    roots = find_captures(cfg.captures)
    paths = [str(p.resolve()) for p in roots]
    hashes = [lineage.dir_hash(p) for p in roots]
    return Plan(items=[Item(i, source=p) for i, p in enumerate(paths)],
                sources=[{"kind": "capture", "uri": p, "content_hash": h} for p, h in zip(paths, hashes)],
                content={"captures": hashes})


def needs_models(cfg: MultiviewConfig) -> bool:
    """CLIP and VLM scorers load weights once per actor; classical ones run in stateless tasks."""
    return any(name in specs.MODEL_BACKED for name, _ in cfg.scorer_specs)


class MultiviewItems:
    """Per worker: the scorers, set up (weights loaded) once."""

    def __init__(self, cfg: MultiviewConfig, context: Any = None):
        self.cfg = cfg
        self.scorers = specs.build(cfg.scorer_specs)
        for s in self.scorers:
            s.setup()

    def __call__(self, item: Item, rng: np.random.Generator) -> list[Any]:
        samples, rejects = multiview_samples(item.source, self.cfg, rng, scorers=self.scorers)
        return [*samples, *rejects]


PRODUCT = Product(
    name="multiview",
    summary="Multi-view samples: reference view -> 1-4 further views, camera motion in words, scored.",
    config=MultiviewConfig,
    plan=plan,
    setup=MultiviewItems,
    generator="datagen.multiview",
    # At the default config, measured on 2 shared cores: 0.19 s per demo capture (16 small
    # renders), 0.55 s per capture of 30 views at 1080p: a shard of 32 is 6-18 s of one worker.
    shard_size=32,
    preflight=preflight,
    reuse_setup=needs_models,
)
