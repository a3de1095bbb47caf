"""Storyboards from one video: a keyframe per shot, kept while the subject stays the same.

Input is what the video stage already has - sampled frames and their shot ids (from
`datagen.video`'s cut detection) - so decoding is the flow's business, not ours. The product
passes `datagen.video.keyframes.frames_with_shots`, which streams the video and hands over
only each shot's candidate keyframe for at most `MAX_SHOTS` shots (an even spread of a
longer video), so memory and the pairwise reference search below are bounded by that cap,
not by the video's length; any list of frames works too:

1. one keyframe per shot: the sharpest sampled frame of the shot;
2. the character reference comes from one shot: among shots whose keyframe passes the
   reference filters (face, NSFW, ...), the one most similar to the others - the video's
   main subject, not whoever appears once. It is cropped to head and shoulders when a
   face detector is given, and that shot is not used as a panel, so outputs are never
   copies of the input;
3. the other shots, in time order, become panels while their subject resembles the
   reference and differs from the reference and the previous panel (pHash), so the story
   neither changes hero nor repeats a shot. With a face detector the head-and-shoulders
   crops are compared (`identity_similarity`: colour + HOG structure); without one only
   whole frames exist, whose framing changes from shot to shot, so colour alone is used
   (`colour_similarity`, threshold `min_colour`);
4. one caption per panel: from a VLM describer when given (`--captioner`), else a neutral
   template that claims nothing about the content (`meta["caption_source"]` says which).
   `recaption` gives generated storyboards VLM captions the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from datagen.images import to_rgb
from datagen.portable import portable_cv
from datagen.schema import Picture, Region, Reject, Sample, quantize
from datagen.scoring.base import Scorer, apply_scorer
from datagen.scoring.consistency import colour_similarity, identity_similarity
from datagen.scoring.diversity import phash_distance
from datagen.scoring.quality import sharpness
from datagen.storyboard.config import TASK, StoryboardConfig, panel_instruction
from datagen.storyboard.faces import FaceBox, crop_around

GENERATOR = "datagen.storyboard.keyframes@1"
ReferenceFilter = Callable[[np.ndarray], Reject | None]


def storyboard_from_keyframes(
    frames: Sequence[np.ndarray],
    shot_ids: Sequence[int],
    config: StoryboardConfig,
    rng: np.random.Generator,
    *,
    source: str,
    times: Sequence[float] | None = None,
    face_detector=None,
    reference_filters: Sequence[ReferenceFilter] = (),
    describer=None,
    scorers: Sequence[Scorer] = (),
) -> tuple[list[Sample], list[Reject]]:
    """At most one storyboard per video (its shots are one story); rejects say why not."""
    if len(frames) != len(shot_ids) or (times is not None and len(times) != len(frames)):
        raise ValueError(f"{len(frames)} frames, {len(shot_ids)} shot ids, {None if times is None else len(times)} times")
    # Every choice below compares measurements (sharpness, similarity, pHash): OpenCV on its
    # baseline kernels and values at the stored precision, so the same panels on any CPU.
    with portable_cv():
        return _storyboard(frames, shot_ids, config, rng, source, times, face_detector, reference_filters,
                           describer, scorers)


def _storyboard(frames, shot_ids, config, rng, source, times, face_detector, reference_filters, describer, scorers):
    times = list(times) if times is not None else [float(i) for i in range(len(frames))]
    keys = keyframes_per_shot(frames, shot_ids)
    if len(keys) < config.min_panels + 1:
        return [], [_reject("too_few_shots", f"{len(keys)} shot(s); need {config.min_panels} panels + 1 reference shot", source)]

    # ---------------------------------------------------------------- the reference shot
    boxes = {shot: _largest_face(face_detector, to_rgb(frames[idx])) for shot, idx in keys.items()}
    subjects = {}
    filter_rejects = []
    for shot, idx in keys.items():
        img = to_rgb(frames[idx])
        box = boxes[shot]
        if face_detector is not None and box is None:
            continue
        for hook in reference_filters:
            rej = hook(img)
            if rej is not None:
                filter_rejects.append(rej)
                break
        else:
            subjects[shot] = box
    if not subjects:
        why = "; ".join(sorted({f"{r.reason}: {r.detail}" for r in filter_rejects})) or "no keyframe shows a face"
        return [], [_reject("no_reference", f"no shot gives a usable character reference ({why})", source)]
    similarity, threshold = (
        (identity_similarity, config.min_identity) if face_detector is not None else (colour_similarity, config.min_colour)
    )
    crops = {shot: _subject(to_rgb(frames[keys[shot]]), box, config) for shot, box in subjects.items()}
    ref_shot = _main_subject(crops, similarity)
    ref_img = to_rgb(frames[keys[ref_shot]])
    reference = crops[ref_shot]

    # ---------------------------------------------------------------- panels
    panels: list[tuple[int, np.ndarray, FaceBox | None, float]] = []
    dropped: dict[str, int] = {"subject_differs": 0, "near_duplicate": 0, "no_face": 0}
    for shot, idx in keys.items():
        if shot == ref_shot:
            continue
        img = to_rgb(frames[idx])
        box = boxes[shot]
        if face_detector is not None and box is None:
            dropped["no_face"] += 1
            continue
        sim = similarity(reference, _subject(img, box, config))
        if sim < threshold:
            dropped["subject_differs"] += 1
            continue
        previous = panels[-1][1] if panels else None
        if any(p is not None and phash_distance(p, img) < config.min_panel_distance for p in (ref_img, previous)):
            dropped["near_duplicate"] += 1
            continue
        panels.append((shot, img, box, sim))
    if len(panels) < config.min_panels:
        reason = max(dropped, key=dropped.get) if any(dropped.values()) else "too_few_shots"
        return [], [_reject(reason, f"{len(panels)} panel(s) kept of {len(keys) - 1} shots; dropped {dropped}", source)]
    if len(panels) > config.max_panels:
        start = int(rng.integers(len(panels) - config.max_panels + 1))
        panels = panels[start : start + config.max_panels]

    # ---------------------------------------------------------------- captions + record
    captions, caption_source = caption_panels([p[1] for p in panels], config, describer)
    if captions is None:
        return [], [_reject("caption_empty", "the describer gave an empty caption for a panel", source)]
    sample = _build(reference, panels, captions, caption_source, ref_shot, keys, times, config, source)
    sample.meta["dropped_shots"] = dropped
    samples, rejects = [sample], []
    for scorer in scorers:
        samples, more = apply_scorer(scorer, samples)
        rejects += more
    return samples, rejects


def keyframes_per_shot(frames: Sequence[np.ndarray], shot_ids: Sequence[int]) -> dict[int, int]:
    """Shot id -> index of its sharpest frame, shots in order of first appearance."""
    best: dict[int, tuple[float, int]] = {}
    for i, (frame, shot) in enumerate(zip(frames, shot_ids)):
        s = sharpness(to_rgb(frame))
        if int(shot) not in best or s > best[int(shot)][0]:
            best[int(shot)] = (s, i)
    return {shot: i for shot, (_, i) in best.items()}


def _subject(img: np.ndarray, box: FaceBox | None, config: StoryboardConfig) -> np.ndarray:
    return crop_around(img, box, config.face_grow) if box is not None else img


def _main_subject(crops: dict[int, np.ndarray], similarity) -> int:
    """The shot whose subject is most similar, on average, to the other candidates'."""
    shots = sorted(crops)
    if len(shots) <= 2:
        return shots[0]
    mean = [quantize(math.fsum(similarity(crops[a], crops[b]) for b in shots if b != a) / (len(shots) - 1))
            for a in shots]
    return shots[int(np.argmax(mean))]  # ties: the earliest shot


def _largest_face(detector, img: np.ndarray) -> FaceBox | None:
    if detector is None:
        return None
    faces = detector.detect(img)
    return max(faces, key=lambda f: f.w * f.h) if faces else None


def caption_panels(images: list[np.ndarray], config: StoryboardConfig, describer) -> tuple[list[str] | None, str]:
    """One caption per panel and where they came from; (None, "vlm") when the VLM gave an
    empty answer for any panel (the caller rejects: a story with a silent panel is not one)."""
    if describer is None:
        subject = config.subject[:1].upper() + config.subject[1:]
        return [f"{subject}, in the next shot." if k else f"{subject}." for k in range(len(images))], "template"
    texts = describer([[im] for im in images], [{"subject": config.subject}] * len(images))
    return (None, "vlm") if any(t is None for t in texts) else (list(texts), describer.tag)


def recaption(sample: Sample, config: StoryboardConfig, describer, source: str = "") -> Sample | Reject:
    """A generated storyboard with VLM captions of what its panels show; the template captions
    (what each panel was asked for) stay in meta["template_captions"]."""
    captions, caption_source = caption_panels([p.pixels for p in sample.outputs], config, describer)
    if captions is None:
        return _reject("caption_empty", "the describer gave an empty caption for a panel",
                       source or ",".join(sample.source_ids))
    sample.meta["template_captions"] = sample.meta.get("captions")
    sample.meta["captions"] = captions
    sample.meta["caption_source"] = caption_source
    sample.instruction = panel_instruction(captions, config.templates)
    return sample


def _build(reference, panels, captions, caption_source, ref_shot, keys, times, config, source) -> Sample:
    ref_px = _fit(reference, config.max_side)
    outputs, regions = [], []
    for k, (_shot, img, box, _sim) in enumerate(panels):
        px = _fit(img, config.max_side)
        outputs.append(Picture(px, "target", config.image_format))
        if box is not None:
            h, w = img.shape[:2]
            regions.append(Region("face:0", "output", k, box=box.normalised(w, h)))
    return Sample(
        task=TASK,
        instruction=panel_instruction(captions, config.templates),
        inputs=[Picture(ref_px, "reference", config.image_format)],
        outputs=outputs,
        regions=regions,
        meta={
            "source_kind": "video",
            "captions": captions,
            "caption_source": caption_source,
            "reference_shot": ref_shot,
            "panel_shots": [p[0] for p in panels],
            "panel_times": [round(float(times[keys[p[0]]]), 3) for p in panels],
            "panel_similarity": [round(float(p[3]), 4) for p in panels],
            "similarity_kind": "identity" if panels[0][2] is not None else "colour",
        },
        source_ids=[f"{source}#shot{ref_shot}"] + [f"{source}#shot{p[0]}" for p in panels],
        generator=GENERATOR,
    )


def _fit(img: np.ndarray, max_side: int | None) -> np.ndarray:
    if max_side is None or max(img.shape[:2]) <= max_side:
        return np.ascontiguousarray(img)
    scale = max_side / max(img.shape[:2])
    return cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def _reject(reason: str, detail: str, source: str) -> Reject:
    return Reject(reason=reason, detail=detail, source=source, task=TASK, stage="generate", generator=GENERATOR)
