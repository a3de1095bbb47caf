"""Face and NSFW filter hooks on character references, with local files only."""

import cv2
import numpy as np
import pytest
import skimage.data

from datagen.rng import sample_rng
from datagen.weights import MissingWeights
from datagen.storyboard import (
    CascadeFaceDetector,
    FaceFilter,
    NSFWFilter,
    StoryboardConfig,
    YuNetFaceDetector,
    storyboard_from_generator,
)


@pytest.fixture(scope="module")
def face_filter():
    return FaceFilter(CascadeFaceDetector())


def test_face_filter_on_real_photos(face_filter):
    astronaut = skimage.data.astronaut()
    assert face_filter(astronaut) is None
    for name in ("coffee", "chelsea", "rocket"):
        rej = face_filter(getattr(skimage.data, name)())
        assert rej.reason == "no_face" and rej.stage == "filter", name
    two = np.concatenate([astronaut[:, :256], cv2.resize(astronaut[:300, 100:400], (256, 512))], axis=1)
    assert face_filter(two).reason == "too_many_faces"
    # The same portrait small in a big frame: a face, but not a usable reference.
    canvas = np.full((800, 800, 3), 128, np.uint8)
    canvas[300:556, 300:556] = cv2.resize(astronaut, (256, 256))
    small = FaceFilter(CascadeFaceDetector(min_side_frac=0.05))(canvas)
    assert small.reason == "face_too_small" and "of the short side" in small.detail


def test_detector_files_must_exist(tmp_path):
    with pytest.raises(MissingWeights) as err:
        CascadeFaceDetector(tmp_path / "my_cascade.xml").setup()
    assert "my_cascade.xml" in str(err.value) and str(tmp_path) in str(err.value)
    with pytest.raises(MissingWeights) as err:
        YuNetFaceDetector(tmp_path / "face_detection_yunet_2023mar.onnx").detect(skimage.data.astronaut())
    assert "face_detection_yunet_2023mar.onnx" in str(err.value) and "opencv_zoo" in str(err.value)


@pytest.fixture(scope="module")
def nsfw_dir(tmp_path_factory, torch_one_thread):
    pytest.importorskip("torch")
    from datagen.testing.tiny_models import make_tiny_nsfw_classifier

    return make_tiny_nsfw_classifier(tmp_path_factory.mktemp("nsfw") / "tiny-nsfw")


def test_nsfw_probability_is_the_classifiers_unsafe_softmax(nsfw_dir):
    import torch
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    photos = [skimage.data.astronaut(), skimage.data.coffee()]
    f = NSFWFilter(nsfw_dir)
    probs = f.probabilities(photos)
    model = AutoModelForImageClassification.from_pretrained(nsfw_dir)
    proc = AutoImageProcessor.from_pretrained(nsfw_dir)
    with torch.no_grad():
        expect = torch.softmax(model(**proc(images=photos, return_tensors="pt")).logits, -1)[:, 1].tolist()
    assert probs == pytest.approx(expect, abs=1e-6)
    assert NSFWFilter(nsfw_dir, threshold=probs[0] + 1e-3)(photos[0]) is None
    rej = NSFWFilter(nsfw_dir, threshold=probs[0] - 1e-3)(photos[0])
    assert rej.reason == "nsfw" and rej.generator == "nsfw_filter@1+tiny-random"


def test_nsfw_configuration_errors(nsfw_dir, tmp_path):
    with pytest.raises(ValueError, match="normal"):
        NSFWFilter(nsfw_dir, unsafe_labels={"explicit"}).setup()
    with pytest.raises(MissingWeights, match="config.json"):
        NSFWFilter(tmp_path).setup()


class Painter:
    """A generator that paints flat colours (stands in for a model: the hook is under test)."""

    tag = "painter@test"
    reference_mode = "none"

    def setup(self):
        pass

    def generate(self, prompt, *, seed, width, height, references):
        return np.full((height, width, 3), seed % 256, np.uint8)


def test_reference_hooks_stop_a_storyboard_before_any_panel(face_filter):
    config = StoryboardConfig(generator="http://127.0.0.1:9/painter", width=64, height=64)  # Painter stands in for it
    samples, rejects = storyboard_from_generator(config, sample_rng(0, 0), Painter(), references=[skimage.data.coffee()], reference_filters=[face_filter])
    assert samples == [] and [r.reason for r in rejects] == ["reference_no_face"] and rejects[0].stage == "filter"
    samples, rejects = storyboard_from_generator(config, sample_rng(0, 0), Painter(), references=[skimage.data.astronaut()], reference_filters=[face_filter])
    assert rejects == [] and samples[0].meta["reference_origin"] == "given"
    # A generated reference (a flat colour here) is filtered just the same.
    _, rejects = storyboard_from_generator(config, sample_rng(0, 0), Painter(), reference_filters=[face_filter])
    assert [r.reason for r in rejects] == ["reference_no_face"]
