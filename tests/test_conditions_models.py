"""Model-backed annotators, end to end on random weights written in the real layouts.

controlnet_aux's architectures are built at full size (the layout and key names must match
the real lllyasviel/Annotators files); Depth-Anything-V2 uses a tiny config. The maps mean
nothing, so the checks are plumbing: files found, loaded safely, shapes, dtype, range,
batching equal to one-at-a-time, and agreement with controlnet_aux's own per-image code.
"""

from __future__ import annotations

import os
import pickle

import cv2
import numpy as np
import pytest
import skimage.data

from datagen.conditions import make_annotator, make_reference_sample
from datagen.conditions.base import resize_to
from datagen.testing.tiny_models import (
    write_annotators_dir,
    write_depth_anything_dir,
)
from datagen.rng import sample_rng
from datagen.schema import Reject
from datagen.weights import MissingWeights

IMAGES = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.camera()]  # 512², 451x300, grey
RES = 64  # working resolution: small, the plumbing is the same


@pytest.fixture(scope="module")
def aux_dir(tmp_path_factory):
    files = ("ControlNetHED.pth", "sk_model.pth", "sk_model2.pth", "mlsd_large_512_fp32.pth")
    return write_annotators_dir(tmp_path_factory.mktemp("Annotators"), files)


@pytest.fixture(scope="module")
def pose_dir(tmp_path_factory):
    files = ("body_pose_model.pth", "hand_pose_model.pth", "facenet.pth")
    return write_annotators_dir(tmp_path_factory.mktemp("Annotators"), files)


@pytest.fixture(scope="module")
def depth_dir(tmp_path_factory):
    return write_depth_anything_dir(tmp_path_factory.mktemp("Depth-Anything-V2-Small-hf"))


def assert_batch_equals_single(ann, images, maps):
    for img, m in zip(images, maps):
        (single,) = ann([img])
        assert single.shape == m.shape
        assert np.abs(single.astype(int) - m.astype(int)).max() <= 1


# --------------------------------------------------------------------------- missing weights
@pytest.mark.parametrize(
    "name, missing",
    [("hed", "ControlNetHED.pth"), ("lineart", "sk_model.pth"), ("lineart_coarse", "sk_model2.pth"),
     ("openpose", "body_pose_model.pth"), ("openpose_full", "hand_pose_model.pth"),
     ("mlsd", "mlsd_large_512_fp32.pth"), ("depth_anything", "config.json")],
)
def test_missing_weights_name_the_file_and_the_folder_before_any_work(tmp_path, name, missing):
    ann = make_annotator(name, weights_dir=tmp_path)
    assert ann.needs_weights
    with pytest.raises(MissingWeights) as err:
        ann.check_weights()
    assert missing in str(err.value) and str(tmp_path.resolve()) in str(err.value)
    assert err.value.folder == tmp_path and missing in " ".join(err.value.missing) and err.value.what == name
    with pytest.raises(MissingWeights):  # a flow's per-image path must not turn this into rejects
        ann.try_annotate(IMAGES[:1])


def test_default_weights_folder_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("UNIMONTAGE_WEIGHTS", str(tmp_path))
    with pytest.raises(MissingWeights, match="ControlNetHED.pth") as err:
        make_annotator("hed").check_weights()
    assert str(tmp_path / "Annotators") in str(err.value) and "does not exist" in str(err.value)
    with pytest.raises(MissingWeights, match="model.safetensors") as err:
        (tmp_path / "Depth-Anything-V2-Small-hf").mkdir()
        (tmp_path / "Depth-Anything-V2-Small-hf" / "config.json").write_text("{}")
        (tmp_path / "Depth-Anything-V2-Small-hf" / "preprocessor_config.json").write_text("{}")
        make_annotator("depth_anything").check_weights()
    assert "config.json" not in str(err.value).split("needs")[1].split("not found")[0]


def test_check_weights_accepts_a_folder_argument(aux_dir, tmp_path):
    ann = make_annotator("hed", weights_dir=tmp_path)
    assert set(ann.check_weights(aux_dir)) == {"ControlNetHED.pth"}


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/unimontage_pwned",))


@pytest.mark.parametrize("name, file", [("hed", "ControlNetHED.pth"), ("openpose", "body_pose_model.pth")])
def test_untrusted_checkpoints_never_run_pickled_code(tmp_path, monkeypatch, name, file):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # must not weaken our loads
    marker = "/tmp/unimontage_pwned"
    if os.path.exists(marker):
        os.remove(marker)
    (tmp_path / file).write_bytes(pickle.dumps({"x": _Exploit()}, protocol=2))
    with pytest.raises(pickle.UnpicklingError):
        make_annotator(name, weights_dir=tmp_path).setup()
    assert not os.path.exists(marker)


# --------------------------------------------------------------------------- HED and lineart
@pytest.mark.parametrize("name", ["hed", "hed_scribble", "lineart", "lineart_coarse"])
def test_hed_and_lineart_run_batched_like_controlnet_aux(aux_dir, name):
    ann = make_annotator(name, weights_dir=aux_dir, detect_resolution=RES)
    maps = ann(IMAGES)
    assert [m.shape for m in maps] == [img.shape[:2] for img in IMAGES]
    assert all(m.dtype == np.uint8 for m in maps)
    assert all(m.max() > m.min() for m in maps)
    if name == "hed_scribble":
        assert all(set(np.unique(m)) <= {0, 255} for m in maps)
    assert_batch_equals_single(ann, IMAGES, maps)

    # the reference: controlnet_aux's own per-image __call__ with the same network
    detector = _reference_detector(ann)
    kwargs = {"scribble": True} if name == "hed_scribble" else {"coarse": True} if name == "lineart_coarse" else {}
    for img, m in zip(IMAGES, maps):
        rgb = img if img.ndim == 3 else np.repeat(img[:, :, None], 3, axis=2)
        ref = detector(rgb, detect_resolution=RES, image_resolution=RES, output_type="np", **kwargs)[:, :, 0]
        ref = resize_to(ref, *img.shape[:2])
        if name == "hed_scribble":
            ref = np.where(ref > 127, 255, 0)
            assert (ref != m).mean() < 0.001  # a 1-level difference may flip a pixel at the threshold
        else:
            assert np.abs(ref.astype(int) - m.astype(int)).max() <= 1

    again = make_annotator(name, weights_dir=aux_dir, detect_resolution=RES)(IMAGES[:1])[0]
    assert again.tobytes() == maps[0].tobytes()
    info = ann.describe()
    assert info["version"].startswith("1+controlnet_aux-0.0.10") and len(next(iter(info["weights"].values()))) == 16


def _reference_detector(ann):
    from controlnet_aux import HEDdetector, LineartDetector

    if ann.name.startswith("hed"):
        return HEDdetector(ann.net)
    return LineartDetector(ann.net, ann.net)


def test_an_annotator_ships_to_workers_as_configuration_not_as_a_model(aux_dir):
    ann = make_annotator("hed", weights_dir=aux_dir, detect_resolution=RES)
    ann.setup()
    blob = pickle.dumps(ann)
    assert len(blob) < 10_000  # the 59 MB network stays behind
    clone = pickle.loads(blob)
    assert not hasattr(clone, "net") and clone.describe() == ann.describe()
    assert clone([IMAGES[1]])[0].tobytes() == ann([IMAGES[1]])[0].tobytes()


def test_batches_of_mixed_sizes_are_grouped_and_chunked(aux_dir):
    ann = make_annotator("lineart", weights_dir=aux_dir, detect_resolution=RES, micro_batch=2)
    batch = [IMAGES[0], IMAGES[1], IMAGES[0][::-1].copy(), IMAGES[1][:, ::-1].copy(), IMAGES[0][:, ::-1].copy()]
    maps = ann(batch)
    assert [m.shape for m in maps] == [b.shape[:2] for b in batch]
    assert np.abs(maps[2].astype(int) - ann([batch[2]])[0].astype(int)).max() <= 1


# --------------------------------------------------------------------------- OpenPose
def test_openpose_runs_and_an_empty_pose_map_is_a_no_person_reject(pose_dir):
    # The body network's cost is fixed by its 368px box, not by RES: one image keeps this quick.
    ann = make_annotator("openpose", weights_dir=pose_dir, detect_resolution=RES)
    img = IMAGES[1]
    (m,) = ann([img])
    assert m.shape == img.shape[:2] + (3,) and m.dtype == np.uint8
    assert not m.any()  # random weights find nobody...
    # ...so the map is black, and that is a reject with a reason, not an empty sample
    out = make_reference_sample(img, "chelsea", ["pose"], [m], "a cat", sample_rng(0, 0), annotators=[ann.describe()])
    assert isinstance(out, Reject) and out.reason == "no_person" and out.source == "chelsea"


def test_openpose_full_loads_hand_and_face_models(pose_dir):
    ann = make_annotator("openpose_full", weights_dir=pose_dir, detect_resolution=RES)
    ann.setup()
    assert ann.detector.hand_estimation is not None and ann.detector.face_estimation is not None
    assert set(ann.describe()["weights"]) == {"body_pose_model.pth", "hand_pose_model.pth", "facenet.pth"}
    assert ann.describe()["options"] == {"detect_resolution": RES, "hands": True, "face": True}


# --------------------------------------------------------------------------- any controlnet_aux detector
def test_generic_detector_by_name(aux_dir):
    ann = make_annotator("mlsd", weights_dir=aux_dir, detect_resolution=RES)
    assert ann.kind == "mlsd" and ann.weight_files() == ["mlsd_large_512_fp32.pth"]
    images = IMAGES[:2]  # MLSD works at 512x512 whatever RES is
    maps = ann(images)
    assert [m.shape[:2] for m in maps] == [img.shape[:2] for img in images]
    assert all(m.dtype == np.uint8 for m in maps)
    assert_batch_equals_single(ann, images, maps)
    explicit = make_annotator("controlnet_aux", detector="MLSDdetector", files=("mlsd_large_512_fp32.pth",),
                              weights_dir=aux_dir, detect_resolution=RES)
    assert explicit([IMAGES[0]])[0].tobytes() == maps[0].tobytes()


def test_generic_detector_refuses_what_breaks_the_rules(aux_dir):
    with pytest.raises(ValueError, match="global numpy RNG"):
        make_annotator("controlnet_aux", detector="ContentShuffleDetector", files=("x",))
    with pytest.raises(ValueError, match="which weight files"):
        make_annotator("controlnet_aux", detector="ZoeDetector")


# --------------------------------------------------------------------------- Depth-Anything-V2
def test_depth_anything_end_to_end(depth_dir):
    ann = make_annotator("depth_anything", weights_dir=depth_dir, resolution=196)
    maps = ann(IMAGES)
    assert [m.shape for m in maps] == [img.shape[:2] for img in IMAGES]
    assert all(m.dtype == np.uint8 and m.min() == 0 and m.max() == 255 for m in maps)  # per-image min-max
    assert_batch_equals_single(ann, IMAGES, maps)
    again = make_annotator("depth_anything", weights_dir=depth_dir, resolution=196)(IMAGES[:1])[0]
    assert np.abs(again.astype(int) - maps[0].astype(int)).max() <= 1
    raw = ann.predict(IMAGES[:1])[0]
    assert raw.dtype == np.float32 and raw.shape == IMAGES[0].shape[:2]
    assert ann.describe()["version"].startswith("1+transformers-")
    grey = cv2.cvtColor(IMAGES[0], cv2.COLOR_RGB2GRAY)
    cv2.imwrite("/tmp/test_conditions_depth_random.png", np.hstack([maps[0], grey]))


def test_depth_anything_working_size_comes_from_the_checkpoints_processor(depth_dir):
    default = make_annotator("depth_anything", weights_dir=depth_dir)
    default.setup()
    assert tuple(default._pixel_values(IMAGES[0]).shape[2:]) == (518, 518)
    # HF's DPT processor scales as little as possible toward 518x518 keeping the aspect:
    # a 451x300 photo is enlarged until its long side reaches 518 (both sides x14).
    assert tuple(default._pixel_values(IMAGES[1]).shape[2:]) == (350, 518)
    small = make_annotator("depth_anything", weights_dir=depth_dir, resolution=140)
    small.setup()
    assert tuple(small._pixel_values(IMAGES[1]).shape[2:]) == (140, 210)
    (m,) = small([IMAGES[1]])
    assert m.shape == IMAGES[1].shape[:2]


def test_depth_anything_refuses_pickle_checkpoints(depth_dir, tmp_path):
    for name in ("config.json", "preprocessor_config.json"):
        (tmp_path / name).write_bytes((depth_dir / name).read_bytes())
    (tmp_path / "pytorch_model.bin").write_bytes(b"not looked at")
    with pytest.raises(MissingWeights, match="model.safetensors"):
        make_annotator("depth_anything", weights_dir=tmp_path).setup()
