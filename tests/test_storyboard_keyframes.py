"""Storyboards from keyframes of one video's shots (real photos as shots)."""

import cv2
import numpy as np
import pytest
import skimage.data

from datagen.rng import sample_rng
from datagen.schema import from_row, samples_table, validate
from datagen.scoring import ConsistencyScorer, DiversityScorer
from datagen.storyboard import (
    CascadeFaceDetector,
    FaceFilter,
    StoryboardConfig,
    storyboard_from_keyframes,
)
from datagen.storyboard.keyframes import keyframes_per_shot

ASTRONAUT = skimage.data.astronaut()


def frame(img, y0, x0, side, flip=False, gain=1.0):
    crop = img[y0 : y0 + side, x0 : x0 + int(side * 4 / 3)]
    crop = cv2.resize(crop, (256, 192), interpolation=cv2.INTER_AREA)
    if crop.ndim == 2:
        crop = np.repeat(crop[:, :, None], 3, axis=2)
    crop = crop[:, ::-1] if flip else crop
    return np.clip(crop * gain, 0, 255).astype(np.uint8)


def other_person():
    """A face from LFW (another person), upscaled into a frame of the video's size."""
    face = cv2.resize((skimage.data.lfw_subset()[0] * 255).astype(np.uint8), (110, 110), interpolation=cv2.INTER_CUBIC)
    return np.repeat(np.pad(face, ((41, 41), (73, 73)), mode="edge")[:, :, None], 3, axis=2)


def video():
    """Six shots, three frames each (one blurred), of the astronaut - except shot 3 (another
    person) and shot 5 (a cup of coffee: no person)."""
    shots = [
        frame(ASTRONAUT, 0, 60, 300),
        frame(ASTRONAUT, 30, 120, 220, flip=True),
        frame(ASTRONAUT, 10, 40, 360, gain=0.9),
        other_person(),
        frame(ASTRONAUT, 40, 150, 180),
        frame(skimage.data.coffee(), 0, 0, 400),
    ]
    frames, ids = [], []
    for k, img in enumerate(shots):
        for j in range(3):
            frames.append(cv2.GaussianBlur(img, (0, 0), 2.5) if j != 1 else img)
            ids.append(k)
    return frames, ids


@pytest.fixture(scope="module")
def detector():
    return CascadeFaceDetector()


def test_keyframe_is_the_sharpest_frame_of_each_shot():
    frames, ids = video()
    assert keyframes_per_shot(frames, ids) == {k: 3 * k + 1 for k in range(6)}


def test_storyboard_keeps_the_subject_and_drops_other_people_and_things(detector):
    frames, ids = video()
    config = StoryboardConfig(videos="-", max_panels=4)
    samples, rejects = storyboard_from_keyframes(
        frames, ids, config, sample_rng(0, 0), source="clip.mp4", times=[0.5 * i for i in range(len(frames))],
        face_detector=detector, reference_filters=[FaceFilter(detector)],
        scorers=[ConsistencyScorer(), DiversityScorer()],
    )
    assert rejects == [] and len(samples) == 1
    s = samples[0]
    validate(s)
    ref, panels = s.meta["reference_shot"], s.meta["panel_shots"]
    # The other person (3) and the coffee cup (5) never become panels; the reference shot is held out.
    assert ref in (0, 1, 2, 4) and ref not in panels
    assert set(panels) == {0, 1, 2, 4} - {ref} and panels == sorted(panels)
    assert s.meta["dropped_shots"]["subject_differs"] == 1 and s.meta["dropped_shots"]["no_face"] == 1
    assert s.meta["panel_times"] == [0.5 * (3 * p + 1) for p in panels]
    # The reference is a head-and-shoulders crop, smaller than a frame; one subject box per panel.
    assert s.inputs[0].pixels.shape[:2] != (192, 256) and s.inputs[0].role == "reference"
    assert [r.image for r in s.regions] == list(range(len(panels)))
    assert all(r.name == "face:0" and r.side == "output" for r in s.regions)
    assert s.instruction.startswith(f"Create a {len(panels)}-panel storyboard with the character in <image 1>. Panel 1: ")
    assert s.meta["caption_source"] == "template" and len(s.meta["captions"]) == len(panels)
    assert {"identity_consistency", "diversity"} <= set(s.scores) and s.scorer == "consistency@1,diversity@1"
    assert s.source_ids == [f"clip.mp4#shot{ref}"] + [f"clip.mp4#shot{p}" for p in panels]
    back = from_row(samples_table(samples).to_pylist()[0])
    assert back.meta["panel_shots"] == panels and len(back.regions) == len(panels)


def test_without_a_face_detector_identity_is_judged_on_whole_frames():
    cat, coffee = skimage.data.chelsea(), skimage.data.coffee()
    shots = [frame(cat, 0, 0, 300), frame(cat, 20, 40, 250, flip=True), frame(coffee, 0, 0, 400), frame(cat, 40, 60, 220), frame(cat, 0, 20, 280, gain=1.1)]
    samples, rejects = storyboard_from_keyframes(shots, list(range(5)), StoryboardConfig(videos="-"), sample_rng(1, 0), source="cat.mp4")
    assert not rejects
    assert 2 not in samples[0].meta["panel_shots"] and samples[0].regions == []
    assert samples[0].inputs[0].pixels.shape == (192, 256, 3)


def test_near_duplicate_shots_are_not_two_panels():
    a = frame(ASTRONAUT, 0, 60, 300)
    shots = [frame(ASTRONAUT, 30, 120, 220), a, a.copy(), frame(ASTRONAUT, 40, 150, 180)]
    samples, _ = storyboard_from_keyframes(shots, [0, 1, 2, 3], StoryboardConfig(videos="-", min_panels=2), sample_rng(0, 3), source="v")
    assert samples[0].meta["dropped_shots"]["near_duplicate"] >= 1
    kept = [a] + [p.pixels for p in samples[0].outputs]
    assert sum(np.array_equal(k, a) for k in kept) <= 1 or samples[0].meta["reference_shot"] not in (1, 2)


def test_rejects_with_reasons(detector):
    frames, ids = video()
    few, _ = storyboard_from_keyframes(frames[:6], ids[:6], StoryboardConfig(videos="-"), sample_rng(0, 0), source="v")
    assert few == []
    samples, rejects = storyboard_from_keyframes(frames[:6], ids[:6], StoryboardConfig(videos="-"), sample_rng(0, 0), source="v")
    assert [r.reason for r in rejects] == ["too_few_shots"] and rejects[0].source == "v"
    objects = [frame(skimage.data.coffee(), 0, 0, 400), frame(skimage.data.rocket(), 0, 0, 400), frame(skimage.data.chelsea(), 0, 0, 300)]
    _, rejects = storyboard_from_keyframes(objects, [0, 1, 2], StoryboardConfig(videos="-"), sample_rng(0, 0), source="v", face_detector=detector)
    assert [r.reason for r in rejects] == ["no_reference"]
    # Only astronaut shot 0, the other person and the cup: no second panel of her.
    mixed = [frames[1], frames[10], frames[16]]
    _, rejects = storyboard_from_keyframes(mixed, [0, 1, 2], StoryboardConfig(videos="-"), sample_rng(0, 0), source="v", face_detector=detector)
    assert rejects[0].reason in {"subject_differs", "no_face"} and "dropped" in rejects[0].detail
    with pytest.raises(ValueError):
        storyboard_from_keyframes(frames, ids[:-1], StoryboardConfig(videos="-"), sample_rng(0, 0), source="v")


class Captions:
    """A stand-in VLM describer (the VLM itself is tested in test_scoring_vlm.py)."""

    tag = "vlm_describe@test"

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def __call__(self, groups, fields):
        self.calls.append((len(groups), fields))
        return self.answers[: len(groups)]


def test_captions_come_from_the_describer_or_the_sample_is_rejected(detector):
    frames, ids = video()
    cap = Captions(["She smiles at the camera.", "She turns to the left.", "She looks up."])
    samples, _ = storyboard_from_keyframes(frames, ids, StoryboardConfig(videos="-"), sample_rng(0, 0), source="v", face_detector=detector, describer=cap)
    s = samples[0]
    assert s.meta["captions"] == cap.answers[: len(s.outputs)] and s.meta["caption_source"] == "vlm_describe@test"
    assert "Panel 2: She turns to the left." in s.instruction
    assert cap.calls[0][1][0] == {"subject": "the character"}
    _, rejects = storyboard_from_keyframes(frames, ids, StoryboardConfig(videos="-"), sample_rng(0, 0), source="v", face_detector=detector, describer=Captions(["ok", None, "ok"]))
    assert [r.reason for r in rejects] == ["caption_empty"]
