"""Multi-view samples from one capture folder (the product's unit of work).

iMontage's framing: input = one reference view; outputs = 1-4 further views in capture
order; the instruction names the camera motion between adjacent views (reference -> view 1
-> view 2 ...), as iMontage does, or from `<image 1>` to each view
(`motion_phrasing="reference"`), computed from the poses (see `motion.py`); meta keeps both.
Views are spaced by viewpoint angle rather than by frame count, so slow and fast captures
give comparable motions. With a describer (a local VLM, `--captioner`), its own words for the
motion follow the exact degrees in the instruction (`meta["caption_source"]` says which).

    samples, rejects = multiview_samples(capture_dir, MultiviewConfig(captures=root), rng)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from datagen.images import ImageRejected, load_image
from datagen.multiview.capture import TASK, Capture, View, read_capture
from datagen.multiview.config import MultiviewConfig
from datagen.multiview.motion import CameraMotion, relative_motion
from datagen.multiview.poses import estimate_up, orbit_center
from datagen.portable import portable_cv
from datagen.schema import Picture, Reject, Sample, quantize
from datagen.scoring.base import Scorer, apply_scorer
from datagen.scoring.threshold import ThresholdFilter

GENERATOR = "datagen.multiview@2"  # 2: adjacent motion phrasing by default, captioner

# Motion from <image 1> to each view.
TEMPLATES = (
    "<image 1> shows an object. Show the same object from {n_views}, in order: {steps}.",
    "Starting from the camera of <image 1>, show the object after each camera move: {steps}.",
    "Generate {n_views} of the object in <image 1>: {steps}.",
)
# Motion from each view to the next (view 1 moves from <image 1>, view 2 from view 1, ...).
TEMPLATES_ADJACENT = (
    "<image 1> shows an object. Show it from {n_views}, moving the camera from each view to the next: {steps}.",
    "Starting from the camera of <image 1>, move the camera step by step and show the object after each move: "
    "{steps}.",
    "Generate {n_views} of the object in <image 1>, each moved from the one before: {steps}.",
)
TEMPLATES_ONE = (
    "<image 1> shows an object. Show the same object after the camera moves: {steps}.",
    "Starting from the camera of <image 1>, {steps}, and show the object.",
    "Generate a new view of the object in <image 1>: {steps}.",
)


def multiview_samples(
    capture_dir: str | Path,
    config: MultiviewConfig,
    rng: np.random.Generator,
    *,
    scorers: Sequence[Scorer] = (),
    describer=None,
) -> tuple[list[Sample], list[Reject]]:
    """All samples of one capture and every reject met on the way (views, samples, scores)."""
    # Resizes and scorers on OpenCV's baseline kernels: the same pixels and scores on any CPU.
    with portable_cv():
        return _multiview_samples(capture_dir, config, rng, scorers, describer)


def _multiview_samples(capture_dir, config, rng, scorers, describer) -> tuple[list[Sample], list[Reject]]:
    capture, rejects = read_capture(capture_dir)
    if capture is None:
        return [], rejects
    cid = capture.capture_id
    if len(capture.views) < 2:
        rejects.append(_reject("too_few_views", f"{len(capture.views)} usable view(s); need 2", cid))
        return [], rejects
    center, cond = orbit_center([v.pose for v in capture.views])
    center, cond = np.array([quantize(c) for c in center]), quantize(cond)  # LAPACK noise stops here
    if cond < config.min_orbit_conditioning:
        rejects.append(_reject("not_object_centric", f"camera axes do not converge (conditioning {cond:.2g})", cid))
        return [], rejects
    up = np.array([quantize(c) for c in estimate_up([v.pose for v in capture.views])])

    samples: list[Sample] = []
    seen: set[tuple[int, ...]] = set()
    no_motion = 0
    for _ in range(config.samples_per_capture):
        chosen = choose_views(capture.views, center, up, config, rng)
        if chosen is None:
            no_motion += 1
            continue
        if tuple(chosen) in seen:
            continue
        seen.add(tuple(chosen))
        made = build_sample(capture, chosen, center, up, config, rng)
        (samples if isinstance(made, Sample) else rejects).append(made)
    if no_motion and not samples:
        # One reject for the capture, not one per attempt: the capture is the unit of input.
        rejects.append(_reject("too_little_motion", f"no view >= {config.min_step_deg} deg from any tried reference", cid, "generate"))

    if describer is not None and samples:
        _describe(samples, describer)
    for scorer in scorers:
        samples, more = apply_scorer(scorer, samples)
        rejects += more
    if config.min_scores:
        samples, more = ThresholdFilter({k: (v, None) for k, v in config.min_scores.items()}).apply(samples)
        rejects += more
    return samples, rejects


def choose_views(
    views: list[View], center: np.ndarray, up: np.ndarray, config: MultiviewConfig, rng: np.random.Generator
) -> list[int] | None:
    """Reference index + extra view indices, in capture order (forward or backward)."""
    k = int(rng.integers(config.min_extra, config.max_extra + 1))
    ref = int(rng.integers(len(views)))
    step = float(rng.uniform(config.min_step_deg, config.max_step_deg))
    direction = 1 if rng.random() < 0.5 else -1
    best: list[int] = []
    for d in (direction, -direction):
        picked = [ref]
        i = ref + d
        while 0 <= i < len(views) and len(picked) <= k:
            moved = relative_motion(views[picked[-1]].pose, views[i].pose, center, up)
            if moved.angle_deg >= step:
                total = relative_motion(views[ref].pose, views[i].pose, center, up)
                if _path_azimuth(views, picked + [i], center, up) > config.max_total_deg or total.angle_deg > config.max_total_deg:
                    break
                picked.append(i)
            i += d
        if len(picked) > len(best):
            best = picked
        if len(picked) == k + 1:
            break
    return best if len(best) >= 2 else None


def build_sample(
    capture: Capture,
    chosen: list[int],
    center: np.ndarray,
    up: np.ndarray,
    config: MultiviewConfig,
    rng: np.random.Generator,
) -> Sample | Reject:
    views = [capture.views[i] for i in chosen]
    pixels = []
    for v in views:
        try:
            img = load_image(v.path, keep_alpha=False).pixels
        except ImageRejected as err:
            return _reject(err.reason, err.detail, f"{capture.capture_id}/{v.name}", "generate")
        pixels.append(_fit(img, config.max_side))
    motions = unwrapped_motions([v.pose for v in views], center, up)
    steps = [relative_motion(a.pose, b.pose, center, up) for a, b in zip(views, views[1:])]
    instruction = instruction_for(steps if config.motion_phrasing == "adjacent" else motions, rng,
                                  config.motion_phrasing)
    fmt = config.image_format
    return Sample(
        task=TASK,
        instruction=instruction,
        inputs=[Picture(pixels[0], "reference", fmt)],
        outputs=[Picture(p, "target", fmt) for p in pixels[1:]],
        meta={
            "capture": capture.capture_id,
            "layout": capture.layout,
            "reference_view": views[0].name,
            "views": [v.name for v in views[1:]],
            "motion": [m.as_dict() for m in motions],
            "step_motion": [m.as_dict() for m in steps],
            "motion_phrasing": config.motion_phrasing,
            "caption_source": "poses",
            "orbit_center": [round(float(c), 6) for c in center],
            "up": [round(float(c), 6) for c in up],
        },
        source_ids=[f"{capture.capture_id}/{v.name}" for v in views],
        generator=GENERATOR,
    )


def unwrapped_motions(poses: list, center: np.ndarray, up: np.ndarray) -> list[CameraMotion]:
    """Motion from poses[0] to each later pose, with azimuth accumulated along the path.

    Views are consecutive, so a walk of 195 degrees to the left is "orbit left by 195",
    not the shorter "orbit right by 165" that the two end poses alone would suggest.
    """
    out, azimuth = [], 0.0
    for prev, cur in zip(poses, poses[1:]):
        azimuth += relative_motion(prev, cur, center, up).azimuth_deg
        direct = relative_motion(poses[0], cur, center, up)
        out.append(replace(direct, azimuth_deg=azimuth))
    return out


def _path_azimuth(views: list[View], idx: list[int], center: np.ndarray, up: np.ndarray) -> float:
    return abs(unwrapped_motions([views[i].pose for i in idx], center, up)[-1].azimuth_deg) if len(idx) > 1 else 0.0


def instruction_for(motions: list[CameraMotion], rng: np.random.Generator, phrasing: str = "adjacent") -> str:
    """`motions[k]` is the motion to view k + 1: from the view before it ("adjacent") or from
    <image 1> ("reference"). One view: both phrasings say the same thing."""
    if len(motions) == 1:
        template = TEMPLATES_ONE[int(rng.integers(len(TEMPLATES_ONE)))]
        return template.format(steps=motions[0].words())
    steps = "; ".join(f"view {k + 1}: {m.words()}" for k, m in enumerate(motions))
    options = TEMPLATES_ADJACENT if phrasing == "adjacent" else TEMPLATES
    template = options[int(rng.integers(len(options)))]
    return template.format(n_views=f"{len(motions)} new viewpoints", steps=steps)


DESCRIBED = " Described: {text}"


def _describe(samples: list[Sample], describer) -> None:
    """The VLM's words for the motion join the instruction after the exact degrees, and meta.
    An empty answer leaves the pose instruction alone (caption_source stays "poses")."""
    groups = [[s.inputs[0].pixels] + [p.pixels for p in s.outputs] for s in samples]
    texts = describer(groups, [{"n_extra": len(s.outputs)} for s in samples])
    for s, text in zip(samples, texts):
        s.meta["vlm_description"] = text
        s.meta["vlm_describer"] = describer.tag
        if text:
            s.instruction += DESCRIBED.format(text=text)
            s.meta["caption_source"] = describer.tag


def _fit(img: np.ndarray, max_side: int) -> np.ndarray:
    if not max_side or max(img.shape[:2]) <= max_side:
        return img
    scale = max_side / max(img.shape[:2])
    return cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def _reject(reason: str, detail: str, source: str, stage: str = "source") -> Reject:
    return Reject(reason=reason, detail=detail, source=source, task=TASK, stage=stage, generator=GENERATOR)
