"""Condition-reference samples: one or more condition maps (+ prompt) -> the source image.

iMontage and DreamOmni train "generate the image these maps describe" from maps computed on
real target images. A sample's inputs are the maps (lossless PNG, role "condition:<kind>"),
its one output is the image they were computed from, and its instruction names each map by
`<image k>` and carries the caption when one is known. Task `ref.<kind>` for one map,
`ref.multi` for several. Maps that carry no signal are rejects with a reason, never empty
samples: a pose map without a person is `no_person`, any other blank map `empty_condition`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from datagen.conditions.base import prepare_image
from datagen.images import ImageRejected, load_image
from datagen.schema import (
    PLACEHOLDER,
    InvalidSample,
    Picture,
    Region,
    Reject,
    Sample,
    validate,
)

VERSION = "1"
GENERATOR = f"datagen.conditions.reference@{VERSION}"
KIND = re.compile(r"^[a-z0-9_]+$")

# What the instruction calls each kind of map.
DESCRIPTIONS = {
    "canny": "Canny edge map",
    "depth": "depth map",
    "pose": "pose skeleton",
    "lineart": "line drawing",
    "seg": "segmentation map",
    "softedge": "soft edge map",
    "scribble": "scribble",
    "mlsd": "straight-line map",
}

# A pixel "has signal" above this grey level; a map needs at least MIN_CONTENT of them.
# Pose skeletons are thin, so a small person covers ~0.1-1% of the frame.
SIGNAL_LEVEL = 16
MIN_CONTENT = {"pose": 0.0005}
DEFAULT_MIN_CONTENT = 0.002
# Canny maps denser than this are texture or noise, not structure worth conditioning on.
MAX_CONTENT = {"canny": 0.35}

ONE_MAP = (
    "Generate an image that follows the {maps}.",
    "Create a picture whose structure matches the {maps}.",
    "Render a realistic image from the {maps}.",
    "Use the {maps} as the layout and generate the image.",
)
ONE_MAP_PROMPT = (
    "Generate an image that follows the {maps}. {prompt}",
    "{prompt} Match the structure of the {maps}.",
    "Create this image: {prompt} Follow the {maps}.",
    "Using the {maps} as a guide, generate: {prompt}",
)
MANY_MAPS = (
    "Generate one image that agrees with the {maps}.",
    "Create a picture consistent with the {maps}.",
    "Render an image whose structure matches the {maps}.",
)
MANY_MAPS_PROMPT = (
    "Generate one image that agrees with the {maps}. {prompt}",
    "{prompt} Keep to the {maps}.",
    "Create this image: {prompt} It must match the {maps}.",
)


def describe_kind(kind: str) -> str:
    return DESCRIPTIONS.get(kind, f"{kind.replace('_', ' ')} map")


def clean_prompt(prompt: str | None, max_chars: int = 1000) -> str | None:
    """A caption as one sentence: no stray `<image k>` tags, single spaces, final punctuation."""
    if not prompt:
        return None
    text = " ".join(PLACEHOLDER.sub(" ", str(prompt)).split())[:max_chars].strip()
    if not text:
        return None
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def map_list(kinds: Sequence[str]) -> str:
    parts = [f"{describe_kind(k)} in <image {i + 1}>" for i, k in enumerate(kinds)]
    if len(parts) == 1:
        return parts[0]
    return ", the ".join(parts[:-1]) + " and the " + parts[-1]


def content_fraction(condition: np.ndarray) -> float:
    """Share of pixels with signal (any channel above SIGNAL_LEVEL)."""
    lit = condition > SIGNAL_LEVEL
    if lit.ndim == 3:
        lit = lit.any(axis=2)
    return float(lit.mean())


def check_map(kind: str, condition: np.ndarray, height: int, width: int) -> tuple[str, str] | None:
    """(reason, detail) when a map cannot condition anything, else None."""
    if condition.dtype != np.uint8 or condition.ndim not in (2, 3):
        return "bad_condition", f"{kind} map: want uint8 HxW[x3], got {condition.dtype} {condition.shape}"
    if condition.shape[:2] != (height, width):
        return "size_mismatch", f"{kind} map is {condition.shape[1]}x{condition.shape[0]}, image is {width}x{height}"
    frac = content_fraction(condition)
    low = MIN_CONTENT.get(kind, DEFAULT_MIN_CONTENT)
    if frac < low:
        reason = "no_person" if kind == "pose" else "empty_condition"
        return reason, f"{kind} map: {frac:.4%} of pixels above {SIGNAL_LEVEL}, need {low:.2%}"
    high = MAX_CONTENT.get(kind)
    if high is not None and frac > high:
        return "dense_condition", f"{kind} map: {frac:.1%} of pixels are edges, more than {high:.0%}"
    return None


def pick_kinds(available: Sequence[str], rng: np.random.Generator, multi_prob: float = 0.3,
               max_kinds: int = 3) -> list[str]:
    """Which of the maps computed for an image one sample uses: a single kind, or with
    probability `multi_prob` a combination of 2..max_kinds (DreamOmni/iMontage mix both).
    Kinds keep the order of `available`, so the same combination is always the same task."""
    if not available:
        raise ValueError("no condition kinds to choose from")
    count = 1
    if len(available) > 1 and max_kinds > 1 and rng.random() < multi_prob:
        count = int(rng.integers(2, min(max_kinds, len(available)) + 1))
    chosen = set(rng.choice(len(available), size=count, replace=False).tolist())
    return [k for i, k in enumerate(available) if i in chosen]


def make_reference_sample(
    image: np.ndarray,
    source_id: str,
    kinds: Sequence[str],
    maps: Sequence[np.ndarray],
    prompt: str | None,
    rng: np.random.Generator,
    *,
    annotators: Sequence[dict[str, Any] | None] | None = None,
    regions: Sequence[Region] = (),
    output_format: str = "jpeg",
) -> Sample | Reject:
    """Condition map(s) + prompt -> `image`. `maps[i]` is of kind `kinds[i]` and was computed
    on `image` (same HxW); `annotators[i]` is that annotator's `describe()`, recorded in meta.
    `regions` (masks on `image`) ride along as output regions, e.g. a collage's subjects."""
    kinds = list(kinds)
    if not kinds or len(kinds) != len(maps):
        raise ValueError(f"need one map per kind, got {len(kinds)} kinds and {len(maps)} maps")
    if len(set(kinds)) != len(kinds) or not all(KIND.match(k) for k in kinds):
        raise ValueError(f"kinds must be distinct lower-case names, got {kinds}")
    if annotators is not None and len(annotators) != len(kinds):
        raise ValueError(f"need one annotator description per kind, got {len(annotators)}")
    task = f"ref.{kinds[0]}" if len(kinds) == 1 else "ref.multi"
    base_meta: dict[str, Any] = {"kinds": kinds}

    def reject(reason: str, detail: str) -> Reject:
        return Reject(reason, detail, source=source_id, task=task, stage="generate", meta=base_meta,
                      generator=GENERATOR)

    try:
        target = prepare_image(image)
    except ImageRejected as exc:
        return reject(exc.reason, exc.detail)
    h, w = target.shape[:2]
    for kind, condition in zip(kinds, maps):
        problem = check_map(kind, np.asarray(condition), h, w)
        if problem:
            return reject(*problem)

    text = clean_prompt(prompt)
    templates = (ONE_MAP_PROMPT if text else ONE_MAP) if len(kinds) == 1 else (MANY_MAPS_PROMPT if text else MANY_MAPS)
    template = int(rng.integers(len(templates)))
    instruction = templates[template].format(maps=map_list(kinds), prompt=text or "")
    sample = Sample(
        task=task,
        instruction=instruction.strip(),
        inputs=[Picture(np.ascontiguousarray(m), f"condition:{k}", "png") for k, m in zip(kinds, maps)],
        outputs=[Picture(target, "target", output_format)],
        regions=[Region(r.name, "output", 0, r.mask, r.box) for r in regions],
        meta={
            **base_meta,
            "annotators": list(annotators) if annotators is not None else None,
            "prompt": text,
            "template": template,
        },
        scores={f"content_{k}": content_fraction(np.asarray(m)) for k, m in zip(kinds, maps)},
        scorer=GENERATOR,
        source_ids=[source_id],
        generator=GENERATOR,
    )
    try:
        validate(sample)
    except InvalidSample as exc:
        return reject("invalid_sample", str(exc))
    return sample


# --------------------------------------------------------------------------- sources
@dataclass
class ReferenceSource:
    """An image to annotate, where it came from, its caption and known regions."""

    image: np.ndarray
    source_id: str
    prompt: str | None = None
    regions: list[Region] = field(default_factory=list)


CAPTION_KEYS = ("caption", "prompt", "text")


def source_from_file(path: str | Path, caption_suffix: str | None = ".txt", source_id: str | None = None,
                     prompt: str | None = None) -> ReferenceSource | Reject:
    """An image file (through the guarded loader) and its caption: `prompt` when the caller
    has it (the product reads sidecars while planning), else the sidecar `<stem>.txt` if any.

    `source_id` names the file in samples (default: its path); the product passes the path
    relative to the folder given, so the same images elsewhere give the same bytes."""
    path = Path(path)
    try:
        loaded = load_image(path)
    except ImageRejected as exc:
        return Reject(exc.reason, exc.detail, source=str(path), stage="source", generator=GENERATOR)
    if prompt is None and caption_suffix:
        caption_file = path.with_suffix(caption_suffix)
        prompt = caption_file.read_text(encoding="utf-8", errors="replace").strip() if caption_file.is_file() else None
    return ReferenceSource(loaded.pixels, source_id or str(path), prompt or None)


def source_from_sample(sample: Sample, side: str = "output", image: int = 0) -> ReferenceSource | Reject:
    """One image of a stored sample (any UniMontage dataset), its caption from meta and the
    regions drawn on it. An edit instruction is not a caption, so it is never used as one."""
    pictures = sample.outputs if side == "output" else sample.inputs
    source_id = f"{sample.sample_id or sample.index}#{side}{image}"
    if not 0 <= image < len(pictures):
        return Reject("no_image", f"sample has no {side} image {image}", source=source_id, stage="source",
                      generator=GENERATOR)
    prompt = next((sample.meta[k] for k in CAPTION_KEYS if isinstance(sample.meta.get(k), str)), None)
    regions = [r for r in sample.regions if r.side == side and r.image == image]
    return ReferenceSource(pictures[image].pixels, source_id, prompt, regions)
