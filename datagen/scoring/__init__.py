"""Scorers: a batch of samples -> named scores (or a reject with its reason), plus a threshold filter.

Classical (no weights): `SharpnessScorer`, `ExposureScorer`, `GeometricConsistencyScorer`,
`ConsistencyScorer` (identity/colour), `DiversityScorer`. Model-backed (local weights only):
`CLIPScorer` (open_clip), `VLMRatingScorer` (Q-Align style logits), `VLMRubricScorer` (strict
JSON). Model-backed classes import their heavy libraries inside `setup()`.
"""

from datagen.scoring.base import Scorer, apply_scorer, scorer_reject
from datagen.scoring.clip import CLIPScorer
from datagen.scoring.consistency import (
    ConsistencyScorer,
    colour_similarity,
    identity_similarity,
)
from datagen.scoring.diversity import DiversityScorer, phash, phash_distance
from datagen.scoring.geometry import GeometricConsistencyScorer, pair_geometry
from datagen.scoring.quality import ExposureScorer, SharpnessScorer, exposure, sharpness
from datagen.scoring.threshold import ThresholdFilter
from datagen.scoring.vlm_rating import VLMRatingScorer
from datagen.scoring.vlm_rubric import VLMRubricScorer, parse_rubric

CLASSICAL = (SharpnessScorer, ExposureScorer, GeometricConsistencyScorer, ConsistencyScorer, DiversityScorer)

__all__ = [
    "CLASSICAL",
    "CLIPScorer",
    "ConsistencyScorer",
    "DiversityScorer",
    "ExposureScorer",
    "GeometricConsistencyScorer",
    "Scorer",
    "SharpnessScorer",
    "ThresholdFilter",
    "VLMRatingScorer",
    "VLMRubricScorer",
    "apply_scorer",
    "colour_similarity",
    "exposure",
    "identity_similarity",
    "pair_geometry",
    "parse_rubric",
    "phash",
    "phash_distance",
    "scorer_reject",
    "sharpness",
]
