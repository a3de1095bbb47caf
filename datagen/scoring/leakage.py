"""Leakage between a stylised output and its inputs, without weights (style and ID/style tasks).

A style sample's output must not simply be one of its inputs: not the style image (its
content leaked into the output: "content leakage" in the style-transfer literature), not the
content image unchanged (nothing was stylised), not the identity reference pasted. Inputs are
told apart by role: "style", "content", "identity". Scores, for the first output:

- `style_phash_distance`: pHash distance to the style image (0 = the same picture);
- `style_structure` / `content_structure`: HOG structure similarity to the style / content
  image (`consistency.structure_similarity`): a stylised content keeps the content's layout,
  so it must be closer in structure to the content than to the style;
- `content_change`: mean absolute difference to the content image, grey levels (0 = a copy);
- `identity_phash_distance`: pHash distance to the identity reference.

Rejects: `style_leak` (style_phash_distance below its floor, or the output's structure is
the style's rather than the content's), `content_copy` (content_change below its floor),
`content_lost` (content_structure below its floor: the content did not survive),
`identity_copy` (identity_phash_distance below its floor).
"""

from __future__ import annotations

import cv2
import numpy as np

from datagen.images import to_rgb
from datagen.schema import Sample
from datagen.scoring.base import Scorer, ScoreResult
from datagen.scoring.consistency import structure_similarity
from datagen.scoring.diversity import phash_distance


def _by_role(sample: Sample, role: str) -> np.ndarray | None:
    return next((to_rgb(p.pixels) for p in sample.inputs if p.role == role), None)


def _same_size(a: np.ndarray, like: np.ndarray) -> np.ndarray:
    h, w = like.shape[:2]
    return a if a.shape[:2] == (h, w) else cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA)


class StyleLeakageScorer(Scorer):
    name = "style_leakage"
    version = "1"
    batch_size = 32

    def __init__(self, min_style_distance: float = 0.2, min_content_change: float = 6.0,
                 min_content_structure: float = 0.2, min_identity_distance: float = 0.2):
        super().__init__()
        self.min_style_distance = min_style_distance
        self.min_content_change = min_content_change
        self.min_content_structure = min_content_structure
        self.min_identity_distance = min_identity_distance

    def score_batch(self, samples: list[Sample]) -> list[ScoreResult]:
        return [self._one(s) for s in samples]

    def _one(self, s: Sample) -> ScoreResult:
        if not s.outputs:
            return self.reject("no_output", "nothing to compare", s)
        out = to_rgb(s.outputs[0].pixels)
        style, content, identity = (_by_role(s, r) for r in ("style", "content", "identity"))
        scores: dict[str, float] = {}
        if style is not None:
            scores["style_phash_distance"] = phash_distance(out, style)
            scores["style_structure"] = structure_similarity(out, style)
        if content is not None:
            c = _same_size(content, out)
            scores["content_change"] = float(cv2.absdiff(out, c).mean())
            scores["content_structure"] = structure_similarity(out, c)
        if identity is not None:
            scores["identity_phash_distance"] = phash_distance(out, identity)
        problem = self._problem(scores)
        return self.reject(*problem, s) if problem else scores

    def _problem(self, sc: dict[str, float]) -> tuple[str, str] | None:
        if "style_phash_distance" in sc:
            if sc["style_phash_distance"] < self.min_style_distance:
                return "style_leak", (f"the output is the style image (pHash distance {sc['style_phash_distance']:.3f} "
                                      f"< {self.min_style_distance})")
            if "content_structure" in sc and sc["style_structure"] > sc["content_structure"]:
                return "style_leak", (f"the output has the style image's layout (structure {sc['style_structure']:.2f}"
                                      f" vs {sc['content_structure']:.2f} to the content)")
        if "content_change" in sc:
            if sc["content_change"] < self.min_content_change:
                return "content_copy", (f"the output is the content image unchanged (mean difference "
                                        f"{sc['content_change']:.1f} < {self.min_content_change} levels)")
            if sc["content_structure"] < self.min_content_structure:
                return "content_lost", (f"the output lost the content's structure (similarity "
                                        f"{sc['content_structure']:.2f} < {self.min_content_structure})")
        if sc.get("identity_phash_distance", 1.0) < self.min_identity_distance:
            return "identity_copy", (f"the output is the identity reference pasted (pHash distance "
                                     f"{sc['identity_phash_distance']:.3f} < {self.min_identity_distance})")
        return None
