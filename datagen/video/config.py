"""Everything `process_video` can be told, in one frozen dataclass the flow can log."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from datagen.video.filters import MotionRule, QualityRule
from datagen.video.flow import METHODS
from datagen.video.probe import Limits
from datagen.video.shots import CutRule


@dataclass(frozen=True)
class VideoPairConfig:
    # sampling
    sample_fps: float = 2.0  # decode grid; pairs and cuts are found on it
    gap_range_s: tuple[float, float] = (0.5, 2.0)  # time between the two frames of a pair
    anchor_every_s: float = 1.0  # one pair starts about this often within a shot
    max_pairs_per_video: int = 200
    # motion
    flow_method: str = "dis"  # "dis" | "dis_fine" (follows small movers, ~3x cost) | "farneback" | "raft"
    work_side: int = 320
    raft_dir: str | None = None
    # storage: frames are JPEG (q95); long side capped here (None keeps the source size)
    max_store_side: int | None = 1024
    # filters
    limits: Limits = field(default_factory=Limits)
    quality: QualityRule = field(default_factory=QualityRule)
    motion: MotionRule = field(default_factory=MotionRule)
    cut: CutRule = field(default_factory=CutRule)
    max_phash_distance: int = 6
    # cross-transition pairs
    cut_pairs: bool = True  # last frame before each detected cut -> first frame after it
    stitched_pairs: int = 1  # per video: two clips far apart, the second re-cropped
    stitch_min_separation_s: float = 3.0
    recrop_scale: tuple[float, float] = (0.55, 0.85)  # side of the re-crop window / frame side
    # instructions
    captioner: str = "template"  # "template" | "vlm"
    vlm_dir: str | None = None
    vlm_max_new_tokens: int = 40

    def __post_init__(self):
        lo, hi = self.gap_range_s
        if not 0 < lo <= hi:
            raise ValueError(f"gap_range_s must satisfy 0 < min <= max, got {self.gap_range_s}")
        if self.sample_fps <= 0 or self.anchor_every_s <= 0:
            raise ValueError("sample_fps and anchor_every_s must be > 0")
        if self.flow_method not in METHODS:
            raise ValueError(f"unknown flow_method {self.flow_method!r}")
        if self.flow_method == "raft" and not self.raft_dir:
            raise ValueError("flow_method='raft' needs raft_dir (folder with the RAFT weights)")
        if self.captioner not in ("template", "vlm"):
            raise ValueError(f"unknown captioner {self.captioner!r}")
        if self.captioner == "vlm" and not self.vlm_dir:
            raise ValueError("captioner='vlm' needs vlm_dir (folder with the model)")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)
