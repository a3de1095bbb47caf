"""ControlNet condition maps and condition-reference samples.

    ann = make_annotator("canny")                                # or "hed", weights_dir=...
    ann.check_weights()                                          # on the driver, before any work
    ann.setup()                                                  # once per worker / actor
    maps = ann.try_annotate(images)                              # map or ImageRejected per image
    make_reference_sample(img, source_id, ["canny"], [m], caption, rng, annotators=[ann.describe()])

`seg_regions` is the one annotator that reads sample records (`consumes == "sample"`): it
maps a collage's exact region masks, not pixels. Random-weight checkpoints in the real
layouts, for tests and benchmarks, come from `datagen.testing`.
Importing this package is cheap: controlnet_aux, transformers and torch load in `setup()`.
The dataset product (config, plan, per-item function) is `datagen.conditions.product`.
"""

from datagen.conditions.base import (
    ANNOTATORS,
    Annotator,
    make_annotator,
    prepare_image,
    register,
)
from datagen.conditions.canny import CannyAnnotator, auto_thresholds, canny_map
from datagen.conditions.controlnet_aux_backend import (
    DETECTORS,
    GenericAuxAnnotator,
    HEDAnnotator,
    LineartAnnotator,
    OpenPoseAnnotator,
    draw_pose_map,
)
from datagen.conditions.depth_anything import DepthAnythingAnnotator, normalise_depth
from datagen.conditions.lineart_standard import (
    LineartStandardAnnotator,
    lineart_standard_map,
)
from datagen.conditions.reference import (
    ReferenceSource,
    check_map,
    content_fraction,
    make_reference_sample,
    pick_kinds,
    source_from_file,
    source_from_sample,
)
from datagen.conditions.seg_from_regions import (
    PALETTE,
    SegFromRegionsAnnotator,
    seg_map,
)

__all__ = [
    "ANNOTATORS",
    "DETECTORS",
    "PALETTE",
    "Annotator",
    "CannyAnnotator",
    "DepthAnythingAnnotator",
    "GenericAuxAnnotator",
    "HEDAnnotator",
    "LineartAnnotator",
    "LineartStandardAnnotator",
    "OpenPoseAnnotator",
    "ReferenceSource",
    "SegFromRegionsAnnotator",
    "auto_thresholds",
    "canny_map",
    "check_map",
    "content_fraction",
    "draw_pose_map",
    "lineart_standard_map",
    "make_annotator",
    "make_reference_sample",
    "normalise_depth",
    "pick_kinds",
    "prepare_image",
    "register",
    "seg_map",
    "source_from_file",
    "source_from_sample",
]
