"""The collage product (DreamOmni): its config, plan and per-item function, declared once."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from datagen.collage.checker import check
from datagen.collage.tasks import MAX_SIZE, MIN_SIZE, TASKS, CollageSpec, generate
from datagen.params import ProductConfig, param
from datagen.product import Item, ItemRange, Plan, Product


def expand_tasks(wanted: tuple[str, ...]) -> tuple[str, ...]:
    """Task names in registry order; a family prefix ("drag") selects its members."""
    if not wanted:
        return TASKS
    picked: list[str] = []
    for t in wanted:
        match = [name for name in TASKS if name == t or name.startswith(t + ".")]
        if not match:
            raise ValueError(f"unknown collage task {t!r}; choose from: {', '.join(TASKS)}")
        picked += [m for m in match if m not in picked]
    return tuple(picked)


@dataclass(frozen=True)
class CollageConfig(ProductConfig):
    num: int = param(help="Number of samples to plan (each becomes a sample or a reject).", min=1, max=10**9,
                     content=False)
    tasks: tuple[str, ...] = param((), "Comma-separated tasks (default: all). A family prefix selects its "
                                   "members, e.g. 'drag' = drag.translate,drag.scale,drag.rotate.")
    size: int = param(512, "Side of the square output images, in pixels.", min=MIN_SIZE, max=MAX_SIZE)
    assets: str | None = param(None, "Asset folder (backgrounds/, cutouts/ RGBA) or a Lance asset table. "
                               "Default: the embedded starter pack.", content=False)
    photos: str | None = param(None, "A folder of photos to cut out (foreground via a local rembg model, "
                               "--rembg) and add to the pack's cutouts.", content=False, advanced=True)
    rembg: str | None = param(None, "A u2net-family .onnx file, or a folder holding u2net.onnx / u2netp.onnx / "
                              "silueta.onnx, for --photos.", content=False, advanced=True)

    def validate(self) -> None:
        object.__setattr__(self, "tasks", expand_tasks(self.tasks))
        if self.photos and not self.rembg:
            raise ValueError("--photos needs --rembg: the local model that cuts the foreground out")


def _item(tasks: tuple[str, ...], index: int) -> Item:
    return Item(index, data={"task": tasks[index % len(tasks)]})


def plan(cfg: CollageConfig) -> Plan:
    from datagen.collage.assets import load_assets
    from datagen.collage.starter_pack import starter_pack
    from datagen.store.lance_io import normalise_uri

    if cfg.assets:
        pack, pre_rejects = load_assets(cfg.assets)  # raises before any work when nothing usable is there
        uri = normalise_uri(cfg.assets)
    else:
        pack, pre_rejects = starter_pack(), []
        uri = "embedded:starter-pack"
    sources = [{"kind": "assets", "uri": uri, "content_hash": pack.content_hash(), "files": len(pack.sources())}]
    if cfg.photos:
        from datagen.collage.rembg_cutouts import cutouts_from_folder
        from datagen.store.lineage import file_hash

        cutouts, refused = cutouts_from_folder(cfg.photos, cfg.rembg)
        pack, pre_rejects = pack.merged(cutouts=cutouts), pre_rejects + refused
        sources.append({"kind": "photos", "uri": normalise_uri(cfg.photos), "files": len(cutouts) + len(refused),
                        "model": file_hash(cfg.rembg) if not _is_dir(cfg.rembg) else None})
    # The pack's hash covers every asset's pixels: the same assets anywhere give the same ids.
    return Plan(items=ItemRange(cfg.num, partial(_item, cfg.tasks)), sources=sources, pre_rejects=pre_rejects,
                context=pack, content={"assets": pack.content_hash()})


def _is_dir(path: str | None) -> bool:
    from pathlib import Path

    return bool(path) and Path(path).is_dir()


class CollageItems:
    """Per worker: holds the asset pack, pre-scaled to the canvas once (like loading a model)."""

    def __init__(self, cfg: CollageConfig, pack):
        self.size, self.pack = cfg.size, pack
        self.pack.prepared(cfg.size)

    def __call__(self, item: Item, rng):
        return [generate(CollageSpec(task=item.data["task"], size=self.size, assets=self.pack), rng)]


PRODUCT = Product(
    name="collage",
    summary="DreamOmni-style collage edit pairs: t2i, inpaint/outpaint, add/remove/replace, drag, ref, seg/det, "
            "multi-turn.",
    config=CollageConfig,
    plan=plan,
    setup=CollageItems,
    generator="datagen.collage",
    check=check,
    shard_size=16,
    reuse_setup=True,  # the asset pack is prepared once per actor
)
