"""Condition-reference samples: maps + prompt -> source image, and their rejects."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import skimage.data

from datagen.conditions import (
    ReferenceSource,
    draw_pose_map,
    make_annotator,
    make_reference_sample,
    pick_kinds,
    seg_map,
    source_from_file,
    source_from_sample,
)
from datagen.conditions.reference import clean_prompt
from datagen.images import ImageRejected, encode_png
from datagen.rng import sample_rng
from datagen.schema import (
    PLACEHOLDER,
    REJECT_SCHEMA,
    SAMPLE_SCHEMA,
    Picture,
    Region,
    Reject,
    Sample,
    from_row,
    rejects_table,
    samples_table,
    to_row,
    validate,
)

ASTRONAUT = skimage.data.astronaut()
COFFEE = skimage.data.coffee()


def canny(img):
    ann = make_annotator("canny")
    return ann([img])[0], ann.describe()


def test_single_map_sample_is_valid_lossless_and_records_its_annotator():
    edges, info = canny(ASTRONAUT)
    s = make_reference_sample(ASTRONAUT, "skimage:astronaut", ["canny"], [edges], "an astronaut in an orange suit",
                              sample_rng(7, 0), annotators=[info])
    assert isinstance(s, Sample)
    validate(s)
    assert s.task == "ref.canny"
    assert [p.role for p in s.inputs] == ["condition:canny"] and s.inputs[0].format == "png"
    assert s.outputs[0].role == "target" and np.array_equal(s.outputs[0].pixels, ASTRONAUT)
    assert "<image 1>" in s.instruction and "An astronaut in an orange suit." in s.instruction
    assert s.source_ids == ["skimage:astronaut"]
    assert s.meta["annotators"][0]["name"] == "canny" and s.meta["annotators"][0]["version"] == "1"
    assert 0.01 < s.scores["content_canny"] < 0.2
    back = from_row(samples_table([s]).to_pylist()[0])
    assert np.array_equal(back.inputs[0].pixels, edges)  # the condition map survives storage exactly
    assert back.meta == json.loads(json.dumps(s.meta))
    cv2.imwrite("/tmp/test_conditions_ref_canny.png", np.hstack([cv2.cvtColor(edges, cv2.COLOR_GRAY2BGR),
                                                                 cv2.cvtColor(ASTRONAUT, cv2.COLOR_RGB2BGR)]))


def test_instructions_come_from_seeded_templates():
    edges, _ = canny(COFFEE)

    def instruction(seed: int, prompt: str | None) -> str:
        s = make_reference_sample(COFFEE, "coffee", ["canny"], [edges], prompt, sample_rng(seed, 3))
        assert isinstance(s, Sample)
        return s.instruction

    assert instruction(1, "a cup of coffee") == instruction(1, "a cup of coffee")
    with_prompt = {instruction(seed, "a cup of coffee") for seed in range(24)}
    without = {instruction(seed, None) for seed in range(24)}
    assert len(with_prompt) >= 3 and len(without) >= 3
    assert all("A cup of coffee." in t for t in with_prompt)
    assert all("<image 1>" in t and "Canny edge map" in t for t in with_prompt | without)


def test_multi_condition_sample_names_every_map():
    edges, canny_info = canny(COFFEE)
    lines_ann = make_annotator("lineart_standard")
    (lines,) = lines_ann([COFFEE])
    h, w = COFFEE.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    seg = seg_map([(yy - 200) ** 2 + (xx - 300) ** 2 < 150 ** 2], h, w)
    s = make_reference_sample(COFFEE, "coffee", ["canny", "lineart", "seg"], [edges, lines, seg], "coffee",
                              sample_rng(0, 1), annotators=[canny_info, lines_ann.describe(), None])
    assert isinstance(s, Sample)
    assert s.task == "ref.multi"
    assert [p.role for p in s.inputs] == ["condition:canny", "condition:lineart", "condition:seg"]
    assert sorted(int(k) for k in PLACEHOLDER.findall(s.instruction)) == [1, 2, 3]
    assert "Canny edge map in <image 1>" in s.instruction and "segmentation map in <image 3>" in s.instruction
    assert s.meta["kinds"] == ["canny", "lineart", "seg"]
    validate(s)


def test_blank_maps_are_rejects_with_reasons_not_empty_samples():
    black = np.zeros(COFFEE.shape[:2], np.uint8)
    out = make_reference_sample(COFFEE, "coffee", ["depth"], [black], None, sample_rng(0, 0))
    assert isinstance(out, Reject) and out.reason == "empty_condition" and out.task == "ref.depth"
    pose = np.zeros(COFFEE.shape, np.uint8)
    out = make_reference_sample(COFFEE, "coffee", ["pose"], [pose], "a cup", sample_rng(0, 0))
    assert isinstance(out, Reject) and out.reason == "no_person" and out.source == "coffee"
    # one blank map sinks a multi-condition sample too
    edges, _ = canny(COFFEE)
    out = make_reference_sample(COFFEE, "coffee", ["canny", "pose"], [edges, pose], None, sample_rng(0, 0))
    assert isinstance(out, Reject) and out.reason == "no_person" and out.task == "ref.multi"
    # a flat photo has no edges at all
    flat = np.full((256, 256, 3), 128, np.uint8)
    out = make_reference_sample(flat, "flat", ["canny"], make_annotator("canny")([flat]), None, sample_rng(0, 0))
    assert isinstance(out, Reject) and out.reason == "empty_condition"


def test_noise_gives_a_dense_canny_reject():
    noise = sample_rng(0, 0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    (m,) = make_annotator("canny", low=10, high=20, blur_sigma=0)([noise])
    out = make_reference_sample(noise, "noise", ["canny"], [m], None, sample_rng(0, 0))
    assert isinstance(out, Reject) and out.reason == "dense_condition"


def test_a_person_in_the_pose_map_makes_a_pose_sample():
    from datagen.conditions.controlnet_aux_backend import import_controlnet_aux

    import_controlnet_aux()  # quietly: its import warns about mediapipe and timm
    from controlnet_aux.open_pose import BodyResult, Keypoint, PoseResult

    # OpenPose's 18 body keypoints (normalised) placed on the astronaut's upper body; hips,
    # knees and ankles are out of frame (None), as a detector would report them.
    xy = [(0.44, 0.29), (0.44, 0.47), (0.24, 0.55), (0.12, 0.80), (0.22, 0.98), (0.64, 0.53), (0.70, 0.78),
          (0.64, 0.97), None, None, None, None, None, None, (0.40, 0.25), (0.48, 0.25), (0.35, 0.27), (0.54, 0.27)]
    person = PoseResult(BodyResult([Keypoint(*p) if p else None for p in xy], 12.0, 12), None, None, None)
    h, w = ASTRONAUT.shape[:2]
    pose = draw_pose_map([person], h, w)
    assert pose.shape == (h, w, 3) and pose.any()
    s = make_reference_sample(ASTRONAUT, "astronaut", ["pose"], [pose], None, sample_rng(0, 0))
    assert isinstance(s, Sample) and s.task == "ref.pose" and "pose skeleton in <image 1>" in s.instruction
    cv2.imwrite("/tmp/test_conditions_ref_pose.png", cv2.cvtColor(np.hstack([pose, ASTRONAUT]), cv2.COLOR_RGB2BGR))
    nobody = draw_pose_map([], h, w)
    out = make_reference_sample(ASTRONAUT, "astronaut", ["pose"], [nobody], None, sample_rng(0, 0))
    assert isinstance(out, Reject) and out.reason == "no_person"


def test_wrong_sizes_and_unusable_images_are_rejects():
    edges, _ = canny(COFFEE)
    out = make_reference_sample(ASTRONAUT, "astronaut", ["canny"], [edges], None, sample_rng(0, 0))
    assert isinstance(out, Reject) and out.reason == "size_mismatch"
    tiny = np.zeros((8, 8, 3), np.uint8)
    out = make_reference_sample(tiny, "tiny", ["canny"], [np.zeros((8, 8), np.uint8)], None, sample_rng(0, 0))
    assert isinstance(out, Reject) and out.reason == "too_small"
    with pytest.raises(ValueError, match="one map per kind"):
        make_reference_sample(COFFEE, "c", ["canny", "depth"], [edges], None, sample_rng(0, 0))
    with pytest.raises(ValueError, match="distinct"):
        make_reference_sample(COFFEE, "c", ["canny", "canny"], [edges, edges], None, sample_rng(0, 0))


def test_rgba_and_grey_sources_become_rgb_targets():
    logo = skimage.data.logo()
    edges, _ = canny(logo)
    s = make_reference_sample(logo, "logo", ["canny"], [edges], None, sample_rng(0, 0))
    assert isinstance(s, Sample) and s.outputs[0].pixels.shape == logo.shape[:2] + (3,)
    assert (s.outputs[0].pixels[logo[:, :, 3] == 0] == 255).all()  # transparent -> white, as the annotator saw it
    camera = skimage.data.camera()
    s = make_reference_sample(camera, "camera", ["canny"], [canny(camera)[0]], None, sample_rng(0, 0))
    assert isinstance(s, Sample) and s.outputs[0].pixels.shape == (512, 512, 3)


def test_prompts_are_cleaned_so_they_cannot_break_placeholders():
    assert clean_prompt("  a  cat <image 7> on\na mat ") == "A cat on a mat."
    assert clean_prompt("Wow!") == "Wow!"
    assert clean_prompt("   ") is None and clean_prompt(None) is None
    edges, _ = canny(COFFEE)
    s = make_reference_sample(COFFEE, "c", ["canny"], [edges], "see <image 4> here", sample_rng(0, 0))
    assert isinstance(s, Sample) and "<image 4>" not in s.instruction
    validate(s)


# --------------------------------------------------------------------------- sources
def test_a_folder_of_images_becomes_samples_and_rejects(tmp_path):
    cv2.imwrite(str(tmp_path / "astronaut.png"), cv2.cvtColor(ASTRONAUT, cv2.COLOR_RGB2BGR))
    (tmp_path / "astronaut.txt").write_text("An astronaut with a helmet.\n")
    (tmp_path / "coffee.png").write_bytes(encode_png(COFFEE))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (tmp_path / "tiny.png").write_bytes(encode_png(np.zeros((20, 4, 3), np.uint8)))
    (tmp_path / "flat.png").write_bytes(encode_png(np.full((64, 64, 3), 90, np.uint8)))

    ann = make_annotator("canny")
    samples, rejects = [], []
    files = sorted(tmp_path.glob("*.png"))
    sources = [source_from_file(p) for p in files]
    loaded = [s for s in sources if isinstance(s, ReferenceSource)]
    rejects += [s for s in sources if isinstance(s, Reject)]
    for index, (src, result) in enumerate(zip(loaded, ann.try_annotate([s.image for s in loaded]))):
        if isinstance(result, ImageRejected):
            rejects.append(Reject(result.reason, result.detail, source=src.source_id, stage="annotate"))
            continue
        out = make_reference_sample(src.image, src.source_id, [ann.kind], [result], src.prompt,
                                    sample_rng(11, index), annotators=[ann.describe()])
        (samples if isinstance(out, Sample) else rejects).append(out)

    assert len(samples) + len(rejects) == len(files)  # every input accounted for
    assert sorted(r.reason for r in rejects) == ["corrupt_image", "empty_condition", "too_small"]
    by_source = {s.source_ids[0].rsplit("/", 1)[1]: s for s in samples}
    assert set(by_source) == {"astronaut.png", "coffee.png"}
    assert "An astronaut with a helmet." in by_source["astronaut.png"].instruction
    assert samples_table(samples).schema.equals(SAMPLE_SCHEMA, check_metadata=False)
    assert rejects_table(rejects).schema.equals(REJECT_SCHEMA, check_metadata=False)


def test_a_stored_sample_is_a_source_with_its_caption_and_regions():
    h, w = ASTRONAUT.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    subject = (yy - 200) ** 2 + (xx - 250) ** 2 < 90 ** 2
    stored = Sample(task="edit.add", instruction="Add a disk to <image 1>.", inputs=[Picture(COFFEE, "source")],
                    outputs=[Picture(ASTRONAUT, "target")], regions=[Region("added", "output", 0, subject)],
                    meta={"caption": "an astronaut"}, sample_id="abc", index=4)
    row = to_row(stored)
    src = source_from_sample(from_row(row))
    assert isinstance(src, ReferenceSource)
    assert src.source_id == "abc#output0" and src.prompt == "an astronaut"
    assert [r.name for r in src.regions] == ["added"]
    seg_ann = make_annotator("seg_regions")
    (seg,) = seg_ann([from_row(row)])
    s = make_reference_sample(src.image, src.source_id, ["seg"], [seg], src.prompt, sample_rng(0, 0),
                              annotators=[seg_ann.describe()], regions=src.regions)
    assert isinstance(s, Sample) and s.task == "ref.seg"
    assert s.regions[0].side == "output" and np.array_equal(s.regions[0].mask, subject)
    validate(s)
    missing = source_from_sample(stored, side="input", image=3)
    assert isinstance(missing, Reject) and missing.reason == "no_image"


def test_pick_kinds_mixes_single_and_multi_condition_samples_reproducibly():
    available = ["canny", "depth", "pose"]
    picks = [tuple(pick_kinds(available, sample_rng(5, i), multi_prob=0.4)) for i in range(300)]
    assert picks == [tuple(pick_kinds(available, sample_rng(5, i), multi_prob=0.4)) for i in range(300)]
    singles = [p for p in picks if len(p) == 1]
    assert 0.5 < len(singles) / len(picks) < 0.7  # 1 - multi_prob, give or take sampling noise
    assert {p[0] for p in singles} == set(available)
    assert {p for p in picks if len(p) > 1} >= {("canny", "depth"), ("canny", "depth", "pose")}
    assert all(list(p) == sorted(p, key=available.index) for p in picks)  # stable order -> stable task
    assert pick_kinds(["seg"], sample_rng(0, 0), multi_prob=1.0) == ["seg"]
    with pytest.raises(ValueError):
        pick_kinds([], sample_rng(0, 0))
