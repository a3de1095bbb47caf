"""DreamOmni-style collage generator: edit pairs whose instructions are true by construction.

    from datagen.collage import TASKS, CollageSpec, generate, check, starter_pack
    spec = CollageSpec(task="edit.add", size=512, assets=starter_pack())
    sample = generate(spec, sample_rng(seed, index))   # Sample | Reject, all randomness from rng
    assert check(sample) is None                          # the independent pixel-level checker

Pure functions only: no Prefect, no Ray. The pack is built once and shipped to workers.
"""

from datagen.collage.assets import AssetsUnavailable, load_assets
from datagen.collage.checker import check
from datagen.collage.pack import Asset, AssetPack
from datagen.collage.starter_pack import starter_pack
from datagen.collage.tasks import TASKS, CollageSpec, generate

__all__ = ["TASKS", "Asset", "AssetPack", "AssetsUnavailable", "CollageSpec", "check", "generate", "load_assets",
           "starter_pack"]
