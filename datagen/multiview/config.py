"""The multi-view product's config: every parameter once, with its default, help and bounds.

The CLI (`unimontage datagen multiview`), the Prefect flow and its deployment form, the card
and the lineage record all derive from this class; `multiview_samples` reads it directly.
"""

from __future__ import annotations

from dataclasses import dataclass

from datagen.params import ProductConfig, param
from datagen.scoring import specs

DEFAULT_SCORERS = ("sharpness", "exposure", "geometry", "diversity")


@dataclass(frozen=True)
class MultiviewConfig(ProductConfig):
    captures: str = param(help="Folder of captures: MVImageNet/COLMAP (images/ + sparse/0/{cameras,images}.{bin,txt}) "
                          "or CO3D (frame_annotations.jgz).", content=False)
    samples_per_capture: int = param(2, "Samples drawn per capture (distinct view sets).", min=1, max=256,
                                     flag="--per-capture")
    max_extra: int = param(4, "At most this many extra views per sample (1-4).", min=1, max=4)
    scorers: tuple[str, ...] = param(DEFAULT_SCORERS, "Scorers: sharpness, exposure, geometry, consistency, "
                                     "diversity, clip=DIR, vlm=DIR, vlm-rubric=DIR (local model folders).")
    min_geo: float | None = param(None, "Reject samples whose geometric consistency (RANSAC inlier ratio) is below "
                                  "this. Needs the geometry scorer.", min=0.0, max=1.0)
    min_extra: int = param(1, "At least this many extra views per sample.", min=1, max=4, advanced=True)
    min_step_deg: float = param(10.0, "Least viewpoint change between consecutive chosen views, in degrees.",
                                min=0.0, max=180.0, advanced=True)
    max_step_deg: float = param(30.0, "Most viewpoint change between consecutive chosen views, in degrees.",
                                min=0.0, max=180.0, advanced=True)
    max_total_deg: float = param(180.0, "No output view further than this from the reference, in degrees.",
                                 min=0.0, max=360.0, advanced=True)
    max_side: int = param(512, "Downscale views so the longest side is at most this many pixels; 0 keeps the "
                          "file's size.", min=0, max=8192, advanced=True)
    image_format: str = param("jpeg", "Encoding of the stored views.", choices=("jpeg", "png"), advanced=True)
    min_orbit_conditioning: float = param(1e-3, "Below this the camera axes are about parallel: not an object "
                                          "capture, rejected.", min=0.0, max=1.0, advanced=True)

    def validate(self) -> None:
        if self.min_extra > self.max_extra:
            raise ValueError(f"min_extra ({self.min_extra}) must be <= max_extra ({self.max_extra})")
        if self.min_step_deg > self.max_step_deg:
            raise ValueError(f"min_step_deg ({self.min_step_deg:g}) must be <= max_step_deg ({self.max_step_deg:g})")
        if 0 < self.max_side < 16:
            raise ValueError(f"max_side must be 0 (keep the file's size) or >= 16, got {self.max_side}")
        parsed = specs.parse(list(self.scorers))  # unknown scorers, model scorers without a path
        if self.min_geo is not None and "geometry" not in {name for name, _ in parsed}:
            raise ValueError("--min-geo needs the geometry scorer in --scorers")

    @property
    def scorer_specs(self) -> list[tuple[str, str | None]]:
        return specs.parse(list(self.scorers))

    @property
    def min_scores(self) -> dict[str, float]:
        """Score floors the samples must meet (see `datagen.scoring.threshold`)."""
        return {} if self.min_geo is None else {"geo_consistency": self.min_geo}
