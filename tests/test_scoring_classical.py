"""Classical scorers on real photos: consistent pairs score above shuffled pairs; the Scorer
plumbing (provenance, rejects, retries) and the threshold filter."""

import cv2
import numpy as np
import pytest
import skimage.data

from datagen.schema import Picture, Region, Reject, Sample
from datagen.scoring import (
    ConsistencyScorer,
    DiversityScorer,
    ExposureScorer,
    GeometricConsistencyScorer,
    Scorer,
    SharpnessScorer,
    ThresholdFilter,
    apply_scorer,
    colour_similarity,
    exposure,
    identity_similarity,
    pair_geometry,
    phash_distance,
    sharpness,
)


def sample(ref, outs, task="multiview", **kw):
    return Sample(task, "Show <image 1> again.", [Picture(ref, "reference")], [Picture(o, "target") for o in outs], source_ids=["src"], **kw)


@pytest.fixture(scope="module")
def photos():
    left, right, _ = skimage.data.stereo_motorcycle()
    return {
        "left": left,
        "right": right,
        "astronaut": skimage.data.astronaut(),
        "coffee": skimage.data.coffee(),
        "chelsea": skimage.data.chelsea(),
        "rocket": skimage.data.rocket(),
    }


def test_sharpness_and_exposure_on_degraded_photos(photos):
    img = photos["astronaut"]
    blurred = cv2.GaussianBlur(img, (0, 0), 3)
    assert sharpness(img) > 5 * sharpness(blurred)
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        photo = photos[name]
        good = exposure(photo)["score"]
        dark = exposure((photo * 0.08).astype(np.uint8))["score"]
        blown = exposure(np.clip(photo.astype(int) * 3 + 100, 0, 255).astype(np.uint8))["score"]
        assert good > 0.8 and dark < 0.2 and blown < 0.3, name
    dark = exposure((img * 0.08).astype(np.uint8))["score"]
    s = sample(img, [blurred])
    kept, rejects = apply_scorer(SharpnessScorer(), [s])
    assert not rejects and kept[0].scores["sharpness"] == pytest.approx(sharpness(blurred))
    kept, _ = apply_scorer(ExposureScorer(), [sample(img, [(img * 0.08).astype(np.uint8)])])
    assert kept[0].scores["exposure"] == pytest.approx(dark)


def test_geometric_consistency_stereo_pair_beats_shuffled_pairs(photos):
    consistent = pair_geometry(photos["left"], photos["right"])
    assert consistent.score > 0.8 and consistent.inliers > 100
    for other in ("astronaut", "coffee", "rocket"):
        shuffled = pair_geometry(photos["left"], photos[other])
        assert shuffled.score < 0.1 and shuffled.inliers < consistent.inliers / 10
    # A rotated, zoomed copy is one rigid scene too.
    M = cv2.getRotationMatrix2D((256, 256), 10, 0.85)
    warped = cv2.warpAffine(photos["astronaut"], M, (512, 512))
    assert pair_geometry(photos["astronaut"], warped).score > 0.8
    kept, _ = apply_scorer(GeometricConsistencyScorer(), [sample(photos["left"], [photos["right"]]), sample(photos["left"], [photos["coffee"]])])
    assert kept[0].scores["geo_consistency"] > 0.8 > 0.1 > kept[1].scores["geo_consistency"]


def test_identity_consistency_same_face_beats_other_faces():
    faces = (skimage.data.lfw_subset()[:100] * 255).astype(np.uint8)
    rng = np.random.default_rng(0)

    def view(face):
        """The same face seen again: shifted, scaled, rotated, relit, maybe mirrored."""
        big = cv2.resize(face, (100, 100), interpolation=cv2.INTER_CUBIC)
        M = cv2.getRotationMatrix2D((50, 50), rng.uniform(-6, 6), rng.uniform(0.92, 1.08))
        M[:, 2] += rng.integers(-5, 6, 2)
        out = cv2.warpAffine(big, M, (100, 100), borderMode=cv2.BORDER_REFLECT)
        out = np.clip(out * rng.uniform(0.85, 1.15) + rng.uniform(-10, 10), 0, 255).astype(np.uint8)
        return np.repeat((out[:, ::-1] if rng.random() < 0.5 else out)[:, :, None], 3, axis=2)

    same, other = [], []
    for i in range(40):
        ref = np.repeat(cv2.resize(faces[i], (100, 100))[:, :, None], 3, axis=2)
        same.append(identity_similarity(ref, view(faces[i])))
        other.append(identity_similarity(ref, view(faces[(i + 1 + rng.integers(98)) % 100])))
    same, other = np.array(same), np.array(other)
    assert same.mean() > other.mean() + 0.1
    assert (same[:, None] > other[None, :]).mean() > 0.8  # AUC


def test_colour_consistency_and_scorer_uses_subject_regions(photos):
    cat = photos["chelsea"]
    assert colour_similarity(cat[:, :300], cat[:, 150:]) > colour_similarity(cat, photos["rocket"]) + 0.3
    # Panels: the cat in the right half of a wider canvas; the region says where.
    canvas = np.concatenate([photos["coffee"][:300, :451], cat], axis=1)
    s = sample(cat, [canvas], task="storyboard")
    plain = apply_scorer(ConsistencyScorer(), [s])[0][0].scores["identity_consistency"]
    s2 = sample(cat, [canvas], task="storyboard")
    s2.regions = [Region("subject:0", "output", 0, box=(0.5, 0.0, 1.0, 1.0))]
    cropped = apply_scorer(ConsistencyScorer(), [s2])[0][0].scores["identity_consistency"]
    assert cropped > 0.95 > plain


def test_diversity_phash(photos):
    img = photos["astronaut"]
    near = cv2.resize(cv2.resize(img, (256, 256)), (512, 512))
    assert phash_distance(img, near) < 0.1
    assert phash_distance(img, photos["coffee"]) > 0.3
    kept, _ = apply_scorer(DiversityScorer(), [sample(img, [img, near]), sample(img, [photos["coffee"], photos["rocket"]])])
    assert kept[0].scores["diversity"] < 0.1 < 0.3 < kept[1].scores["diversity"]


# --------------------------------------------------------------------------- plumbing
class Flaky(Scorer):
    name, version = "flaky", "7"

    def score_batch(self, samples):
        if any(s.meta.get("poison") for s in samples):
            raise RuntimeError("batch broke")
        return [{"flaky": 1.0} if not s.meta.get("refuse") else self.reject("refused", "no", s) for s in samples]


def test_apply_scorer_records_provenance_and_isolates_failures(photos):
    img = photos["coffee"]
    samples = [sample(img, [img], meta=m) for m in ({}, {"poison": True}, {"refuse": True}, {})]
    kept, rejects = apply_scorer(Flaky(), samples)
    assert [s.scores for s in kept] == [{"flaky": 1.0}, {"flaky": 1.0}]
    assert [s.scorer for s in kept] == ["flaky@7", "flaky@7"]
    assert sorted(r.reason for r in rejects) == ["refused", "scorer_error"]
    assert all(r.stage == "score" and r.source == "src" and r.generator == "flaky@7" for r in rejects)
    assert "batch broke" in next(r for r in rejects if r.reason == "scorer_error").detail
    # Two scorers may not write one key.
    with pytest.raises(ValueError, match="overwrite"):
        apply_scorer(Flaky(), kept)
    kept2, _ = apply_scorer(SharpnessScorer(), kept)
    assert kept2[0].scorer == "flaky@7,sharpness@1"


def test_threshold_filter(photos):
    img = photos["coffee"]
    a, b, c = (sample(img, [img], scores=sc) for sc in ({"sharpness": 100.0, "vlm": 0.9}, {"sharpness": 10.0, "vlm": 0.9}, {"sharpness": 100.0}))
    f = ThresholdFilter({"sharpness": (50.0, None), "vlm": (0.5, 1.0)})
    kept, rejects = f.apply([a, b, c])
    assert kept == [a]
    assert [r.reason for r in rejects] == ["sharpness_below_min", "score_missing"]
    assert all(isinstance(r, Reject) and r.stage == "filter" for r in rejects)
    assert f.counts == {"sharpness_below_min": 1, "score_missing": 1}
    with pytest.raises(ValueError):
        ThresholdFilter({"x": (2.0, 1.0)})
