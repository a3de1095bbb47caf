"""VLM scorers end to end with a tiny random-weight Qwen2.5-VL built from configs: prompt layout,
image placement, score extraction, batching, and unparsable answers -> rejects."""

import shutil

import numpy as np
import pytest
import skimage.data

torch = pytest.importorskip("torch")

from datagen.schema import Picture, Sample  # noqa: E402
from datagen.scoring import (  # noqa: E402
    VLMRatingScorer,
    VLMRubricScorer,
    apply_scorer,
    parse_rubric,
)
from datagen.testing.tiny_models import make_tiny_qwen2_5_vl  # noqa: E402
from datagen.scoring.vlm_backend import VLMBackend, sample_query  # noqa: E402
from datagen.scoring.vlm_describe import VLMDescriber  # noqa: E402
from datagen.scoring.vlm_rating import rating_from_logprobs  # noqa: E402
from datagen.scoring.vlm_rubric import RubricError, rubric_scores  # noqa: E402
from datagen.weights import MissingWeights  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def vlm_dir(tmp_path_factory):
    return make_tiny_qwen2_5_vl(tmp_path_factory.mktemp("qwen") / "tiny-qwen2.5-vl")


def small(img, side=56):
    import cv2

    return cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)


def make(inputs, outputs, instruction="Show <image 1> from the left."):
    return Sample("multiview", instruction, [Picture(small(i), "reference") for i in inputs], [Picture(small(o), "target") for o in outputs], source_ids=["s"])


@pytest.fixture(scope="module")
def samples():
    a, c, h = skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()
    return [make([a], [c]), make([c], [a, h]), make([h], [h])]


def test_prompt_layout_and_image_placement(vlm_dir, samples):
    backend = VLMBackend(vlm_dir, max_side=56)
    backend.load()
    q = sample_query(samples[1], "Rate it.", "The quality is")
    text = backend.prompt_text(q)
    img = "<|vision_start|><|image_pad|><|vision_end|>"
    assert text.endswith(f"<|im_start|>user\nInput 1:{img}Output 1:{img}Output 2:{img}Rate it.<|im_end|>\n<|im_start|>assistant\nThe quality is")
    batch = backend.encode([q, sample_query(samples[0], "Rate it.")])
    pad = backend.processor.image_token_id
    grid = batch["image_grid_thw"]
    assert grid.shape[0] == 5  # 3 images of the first query, 2 of the second, in order
    per_image = (grid.prod(dim=1) // 4).tolist()
    assert (batch["input_ids"][0] == pad).sum().item() == sum(per_image[:3])
    assert (batch["input_ids"][1] == pad).sum().item() == sum(per_image[3:])
    # Left padding: every row's last position is its own next token.
    assert batch["attention_mask"][:, -1].tolist() == [1, 1]


def test_rating_words_are_distinct_first_tokens(vlm_dir):
    backend = VLMBackend(vlm_dir)
    ids = backend.first_token_ids(["excellent", "good", "fair", "poor", "bad"])
    assert len(set(ids)) == 5
    assert [backend.tokenizer.decode([i]) for i in ids] == [" excellent", " good", " fair", " poor", " bad"]


def test_rating_math():
    logp = np.log(np.full(10, 1e-9))
    logp[[2, 5]] = np.log([0.3, 0.1])  # "excellent" 0.3, "bad" 0.1
    value, mass = rating_from_logprobs(logp, [2, 3, 5], [1.0, 0.5, 0.0])
    assert mass == pytest.approx(0.4, abs=1e-6)
    assert value == pytest.approx(0.75, abs=1e-6)


def test_batched_rating_equals_one_by_one_and_images_matter(vlm_dir, samples):
    scorer = VLMRatingScorer(vlm_dir, min_mass=0.0, batch_size=3, max_side=56)
    assert scorer.tag == "vlm_rating@1+vlm_rating_quality_v1+tiny-random"
    together = scorer(samples)
    alone = [scorer([s])[0] for s in samples]
    for t, a in zip(together, alone):
        assert set(t) == {"vlm_quality", "vlm_quality_mass"}
        assert t["vlm_quality"] == pytest.approx(a["vlm_quality"], abs=1e-5)
        assert 0.0 <= t["vlm_quality"] <= 1.0 and 0.0 < t["vlm_quality_mass"] < 1.0
    # Same text, different pixels -> different next-token distribution.
    assert together[0]["vlm_quality_mass"] != together[2]["vlm_quality_mass"]
    kept, rejects = apply_scorer(scorer, [make([skimage.data.rocket()], [skimage.data.camera()])])
    assert not rejects and kept[0].scorer == scorer.tag


def test_off_scale_model_is_rejected_not_renormalised(vlm_dir, samples):
    kept, rejects = apply_scorer(VLMRatingScorer(vlm_dir, max_side=56), samples[:2])
    assert kept == [] and [r.reason for r in rejects] == ["vlm_off_scale"] * 2
    assert "most likely next tokens" in rejects[0].detail and rejects[0].stage == "score"


@pytest.mark.parametrize(
    "answer, expect",
    [
        ('{"consistency": 4, "instruction": 3, "quality": 5}', {"consistency": 4, "instruction": 3, "quality": 5}),
        ('```json\n{"quality": 1, "consistency": 2, "instruction": 5}\n```', {"consistency": 2, "instruction": 5, "quality": 1}),
        ("The images look good, I'd say 4/5.", "vlm_not_json"),
        ('{"consistency": 4, "instruction": 3, "quality": 5} Hope this helps!', "vlm_not_json"),
        ("[4, 3, 5]", "vlm_not_json"),
        ('{"consistency": 4, "quality": 5}', "vlm_wrong_keys"),
        ('{"consistency": 4, "instruction": 3, "quality": 5, "note": 1}', "vlm_wrong_keys"),
        ('{"consistency": 6, "instruction": 3, "quality": 5}', "vlm_out_of_range"),
        ('{"consistency": 4.5, "instruction": 3, "quality": 5}', "vlm_out_of_range"),
        ('{"consistency": true, "instruction": 3, "quality": 5}', "vlm_out_of_range"),
    ],
)
def test_parse_rubric(answer, expect):
    keys = ["consistency", "instruction", "quality"]
    if isinstance(expect, dict):
        rubric = parse_rubric(answer, keys, 1, 5)
        assert rubric == expect
        scores = rubric_scores(rubric, 1, 5)
        assert scores["vlm_rubric_quality"] == expect["quality"]
        assert scores["vlm_rubric"] == pytest.approx(np.mean([(v - 1) / 4 for v in expect.values()]))
    else:
        with pytest.raises(RubricError) as err:
            parse_rubric(answer, keys, 1, 5)
        assert err.value.reason == expect


def test_rubric_scorer_rejects_what_does_not_parse(vlm_dir, samples):
    scorer = VLMRubricScorer(vlm_dir, max_side=56, max_new_tokens=8, batch_size=2)
    assert "<image" not in scorer.user_text(samples[0]) and "Input 1" in scorer.user_text(samples[0])
    kept, rejects = apply_scorer(scorer, samples)
    # Random weights never write the rubric: every sample is a reject carrying the raw answer.
    assert kept == [] and len(rejects) == 3
    assert {r.reason for r in rejects} <= {"vlm_not_json", "vlm_wrong_keys", "vlm_out_of_range"}
    assert all("answer was" in r.detail or "keys" in r.detail or "integer" in r.detail for r in rejects)


def test_describer_gives_text(vlm_dir, samples):
    d = VLMDescriber(vlm_dir, "vlm_describe_views_v1", max_new_tokens=6, max_side=56)
    out = d([[s.inputs[0].pixels] + [p.pixels for p in s.outputs] for s in samples[:2]], [{"n_extra": 1}, {"n_extra": 2}])
    assert len(out) == 2 and all(t is None or isinstance(t, str) for t in out)
    assert d.tag.endswith("+tiny-random")


def test_missing_weights_are_named_before_any_work(vlm_dir, tmp_path, samples):
    with pytest.raises(MissingWeights, match="does not exist"):
        VLMRatingScorer(tmp_path / "no-such-model").setup()
    broken = tmp_path / "broken"
    shutil.copytree(vlm_dir, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(MissingWeights) as err:
        apply_scorer(VLMRubricScorer(broken), samples)
    assert "model.safetensors" in str(err.value) and str(broken) in str(err.value)
    (broken / "model.safetensors").symlink_to(vlm_dir / "model.safetensors")
    (broken / "processor_config.json").unlink()
    with pytest.raises(MissingWeights, match="processor_config.json"):
        VLMRatingScorer(broken).setup()
