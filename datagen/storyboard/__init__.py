"""Storyboard samples: character reference(s) in, panels out, one caption per panel.

Two sources: keyframes across the shots of one video (`storyboard_from_keyframes`) and a
generator backend driven by seeded templates (`storyboard_from_generator`). Face and NSFW
filter hooks check character references; all model-backed parts load local files only.
The product (config, plan, item function) is declared in `datagen.storyboard.product`.
"""

from datagen.storyboard.config import StoryboardConfig
from datagen.storyboard.faces import CascadeFaceDetector, FaceFilter, YuNetFaceDetector
from datagen.storyboard.from_generator import storyboard_from_generator
from datagen.storyboard.generators import (
    DiffusersGenerator,
    GenerationFailed,
    HTTPGenerator,
    make_generator,
)
from datagen.storyboard.keyframes import storyboard_from_keyframes
from datagen.storyboard.nsfw import NSFWFilter

__all__ = [
    "CascadeFaceDetector",
    "DiffusersGenerator",
    "FaceFilter",
    "GenerationFailed",
    "HTTPGenerator",
    "NSFWFilter",
    "StoryboardConfig",
    "YuNetFaceDetector",
    "make_generator",
    "storyboard_from_generator",
    "storyboard_from_keyframes",
]
