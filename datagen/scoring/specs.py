"""`--scorers` specs -> scorer objects, and the weight check that runs before any work.

Used by every product that scores its samples (storyboard, multiview): `parse` in the
config's validation, `check_weights` in the plan (on the driver, before any work),
`build` in the product's per-worker setup.

Spec grammar: comma-separated names; model-backed ones take a local path:
`sharpness,exposure,geometry,consistency,diversity,clip=/models/clip,vlm=/models/qwen2.5-vl,
vlm-rubric=/models/qwen2.5-vl`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CLASSICAL = ("sharpness", "exposure", "geometry", "consistency", "diversity")
MODEL_BACKED = ("clip", "vlm", "vlm-rubric")


def parse(spec: str | list[str] | None) -> list[tuple[str, str | None]]:
    if not spec:
        return []
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    out = []
    for part in (p.strip() for p in parts):
        if not part:
            continue
        name, _, path = part.partition("=")
        if name not in CLASSICAL + MODEL_BACKED:
            raise ValueError(f"unknown scorer {name!r}; choose from {', '.join(CLASSICAL + MODEL_BACKED)}")
        if name in MODEL_BACKED and not path:
            raise ValueError(f"scorer {name!r} needs a local model path: {name}=/path/to/model")
        out.append((name, path or None))
    return out


def check_weights(specs: list[tuple[str, str | None]]) -> None:
    """Raise MissingWeights naming the file and folder before any work starts."""
    from datagen.weights import (
        require_any,
        require_dir,
        require_file,
        require_hf_folder,
    )

    for name, path in specs:
        if name == "clip":
            p = Path(path)
            if p.is_dir():
                require_file(p / "open_clip_config.json", "CLIP (open_clip)")
                from datagen.scoring.clip import CHECKPOINT_NAMES

                require_any(p, CHECKPOINT_NAMES, "CLIP (open_clip)")
            else:
                require_file(p, "CLIP (open_clip) checkpoint")
        elif name in ("vlm", "vlm-rubric"):
            require_hf_folder(require_dir(path, "VLM"), "VLM")


def build(specs: list[tuple[str, str | None]]) -> list[Any]:
    """Construct scorers (inside a worker: model loading happens in their setup())."""
    from datagen import scoring

    made = []
    for name, path in specs:
        made.append({
            "sharpness": lambda: scoring.SharpnessScorer(),
            "exposure": lambda: scoring.ExposureScorer(),
            "geometry": lambda: scoring.GeometricConsistencyScorer(),
            "consistency": lambda: scoring.ConsistencyScorer(),
            "diversity": lambda: scoring.DiversityScorer(),
            "clip": lambda: scoring.CLIPScorer(path),
            "vlm": lambda: scoring.VLMRatingScorer(path),
            "vlm-rubric": lambda: scoring.VLMRubricScorer(path),
        }[name]())
    return made
