"""Everything the video-pairs product can be told, declared once: CLI options, flow parameters,
the deployment form, the card and the lineage record all derive from this class.

The four rule groups (`limits`, `quality`, `motion`, `cut`) are nested frozen configs, set
from a flow, a deployment or Python (`quality={"min_sharpness": 30}`), or as JSON on the
command line (`--quality '{"min_sharpness": 30}'`). The one rule value people change often, the pixel floor on
motion, is the top-level `min_motion_px` (`--min-motion`).
"""

from __future__ import annotations

from dataclasses import dataclass

from datagen.params import ProductConfig, param
from datagen.video.filters import MotionRule, QualityRule
from datagen.video.optical_flow import METHODS
from datagen.video.probe import Limits
from datagen.video.shots import CutRule

NESTED = "A dict of its fields from a flow, a deployment or Python; a JSON object on the command line."


@dataclass(frozen=True)
class VideoPairsConfig(ProductConfig):
    videos: str = param(help="Folder (or object-store prefix, e.g. s3://bucket/clips) of video files: mp4, mov, "
                        "mkv, webm, avi, gif, ...", content=False)
    # sampling
    sample_fps: float = param(2.0, "Frames sampled per second of video; pairs and cuts are found on them.",
                              min=0.05, max=30.0, flag="--fps")
    gap_range_s: tuple[float, float] = param((0.5, 2.0), "Seconds between the two frames of a pair: min,max.",
                                             min=0.01, max=600.0, advanced=True)
    anchor_every_s: float = param(1.0, "One pair starts about this often within a shot, seconds.", min=0.05,
                                  max=3600.0, advanced=True)
    max_pairs_per_video: int = param(200, "Pairs kept per video at most.", min=1, max=100_000, advanced=True)
    # motion
    optical_flow: str = param("dis", "Optical flow: dis (default), dis_fine (follows small movers, ~3x the cost), "
                              "farneback, raft (needs --raft-dir).", choices=METHODS, flag="--flow")
    min_motion_px: float = param(0.0, "Reject pairs whose mean motion is below this many pixels of the original "
                                 "resolution (0: only the relative static-pair rule applies).", min=0.0,
                                 max=10_000.0, flag="--min-motion")
    work_side: int = param(320, "Long side, in pixels, at which motion is computed.", min=64, max=2048,
                           advanced=True)
    raft_dir: str | None = param(None, "Folder holding torchvision's RAFT weights (optical_flow=raft).",
                                 advanced=True)
    # storage: frames are JPEG (q95)
    max_store_side: int | None = param(1024, "Long side of stored frames, pixels (null, from a flow or Python: the "
                                       "source size).", min=64, max=8192, advanced=True)
    # filters
    limits: Limits = param(Limits(), "Header limits (min_side, max_pixels, max_bytes, max_duration_s). " + NESTED,
                           advanced=True)
    quality: QualityRule = param(QualityRule(), "Frame quality rule (sharpness, exposure). " + NESTED,
                                 advanced=True)
    motion: MotionRule = param(MotionRule(), "Static-pair threshold and motion up-weighting. " + NESTED,
                               advanced=True)
    cut: CutRule = param(CutRule(), "Hard-cut detection thresholds. " + NESTED, advanced=True)
    max_phash_distance: int = param(6, "A pair whose frames are both within this many pHash bits of a kept pair "
                                    "is a near duplicate.", min=0, max=64, advanced=True)
    # cross-transition pairs
    cut_pairs: bool = param(True, "Last frame before each detected cut -> first frame after it.", advanced=True)
    stitched_pairs: int = param(1, "Per video: pairs of two clips far apart, the second re-cropped.", min=0,
                                max=100, advanced=True)
    stitch_min_separation_s: float = param(3.0, "Seconds between the two clips of a stitched pair, at least.",
                                           min=0.0, max=86_400.0, advanced=True)
    recut_pairs: int = param(2, "Per video with two or more shots: pairs that splice a moment of one shot to a "
                             "moment of another (a re-cut at the known shot boundaries, either order).", min=0,
                             max=50, advanced=True)
    recrop_scale: tuple[float, float] = param((0.55, 0.85), "Side of the re-crop window / frame side: min,max.",
                                              min=0.05, max=1.0, advanced=True)
    # instructions
    captioner: str = param("template", "Instructions from templates, or from a local VLM (needs --vlm-dir).",
                           choices=("template", "vlm"), advanced=True)
    vlm_dir: str | None = param(None, "Folder of the captioning VLM (HF layout).", advanced=True)
    vlm_max_new_tokens: int = param(40, "Longest VLM caption, tokens.", min=1, max=512, advanced=True)

    def validate(self) -> None:
        for name in ("gap_range_s", "recrop_scale"):
            pair = getattr(self, name)
            if len(pair) != 2 or pair[0] > pair[1]:
                raise ValueError(f"{name} must be two numbers min,max with min <= max, got {pair}")
        if self.optical_flow == "raft" and not self.raft_dir:
            raise ValueError("optical_flow=raft needs raft_dir (the folder with the RAFT weights)")
        if self.captioner == "vlm" and not self.vlm_dir:
            raise ValueError("captioner=vlm needs vlm_dir (the folder with the model)")
