"""`--captioner DIR`: a local Qwen2-VL-class VLM captions storyboard panels and describes multi-view
camera motion, wired through the products' configs and setups; a tiny random-weight Qwen2.5-VL
built from configs proves the plumbing (its words mean nothing, and its tag says so)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from datagen.product import INPUT_FILE, Item
from datagen.rng import sample_rng
from datagen.schema import PLACEHOLDER, Reject, Sample, validate
from datagen.weights import MissingWeights
from tests import generator_stand_in
from tests.test_multiview_capture import write_colmap_capture

pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("torch_one_thread")
TOKENS = 4


@pytest.fixture(scope="module")
def vlm_dir(tmp_path_factory):
    from datagen.testing.tiny_models import make_tiny_qwen2_5_vl

    return make_tiny_qwen2_5_vl(tmp_path_factory.mktemp("qwen") / "tiny-qwen2.5-vl")


@pytest.fixture(scope="module")
def story_clip(tmp_path_factory):
    from datagen.storyboard.demo_video import make_storyboard_clip

    return make_storyboard_clip(tmp_path_factory.mktemp("story"), seed=0)


def _samples(out) -> list[Sample]:
    samples = [x for x in out if isinstance(x, Sample)]
    assert samples, [x for x in out if isinstance(x, Reject)]
    return samples


def test_storyboard_panels_are_captioned_by_the_local_vlm(vlm_dir, story_clip):
    from datagen.storyboard import StoryboardConfig
    from datagen.storyboard.product import PRODUCT, StoryboardItems

    cfg = StoryboardConfig(videos=str(story_clip.parent), captioner=str(vlm_dir), captioner_tokens=TOKENS,
                           scorers=("diversity",))
    assert PRODUCT.uses_actors(cfg)  # the VLM loads once per actor
    items = StoryboardItems(cfg)
    item = Item(0, source=str(story_clip), data={"video_id": story_clip.name}, input=INPUT_FILE, path=str(story_clip))
    s = _samples(items(item, sample_rng(0, 0)))[0]
    validate(s)
    tag = "vlm_describe@1+vlm_caption_panel_v1+tiny-random"
    assert s.meta["caption_source"] == tag and len(s.meta["captions"]) == len(s.outputs)
    for k, caption in enumerate(s.meta["captions"]):
        assert caption and f"Panel {k + 1}: {caption}" in s.instruction  # the captions are the instruction
        assert caption.isprintable() and not PLACEHOLDER.search(caption)
    assert "diversity" in s.scores
    without = StoryboardItems(cfg.replace(captioner=None))
    plain = _samples(without(item, sample_rng(0, 0)))[0]
    assert plain.meta["caption_source"] == "template" and plain.meta["captions"][0] == "The character."


def test_generated_storyboards_get_vlm_captions_before_scoring(vlm_dir):
    from datagen.storyboard import StoryboardConfig
    from datagen.storyboard.product import StoryboardItems

    with generator_stand_in.serve() as url:
        cfg = StoryboardConfig(generator=url + "/", num=1, width=48, height=48, faces=False, captioner=str(vlm_dir),
                               captioner_tokens=TOKENS, scorers=("diversity",))
        items = StoryboardItems(cfg)
        s = _samples(items(Item(0, source="generator#0"), sample_rng(1, 0)))[0]
    validate(s)
    assert s.meta["caption_source"].startswith("vlm_describe@1+vlm_caption_panel_v1")
    assert len(s.meta["template_captions"]) == len(s.meta["captions"]) == len(s.outputs)
    assert s.meta["template_captions"] != s.meta["captions"]  # what was asked stays beside what is seen
    assert all(f"Panel {k + 1}: {c}" in s.instruction for k, c in enumerate(s.meta["captions"]))
    assert s.scorer == "diversity@1"


def test_multiview_motion_is_described_beside_the_degrees(vlm_dir, tmp_path):
    from datagen.multiview.config import MultiviewConfig
    from datagen.multiview.product import MultiviewItems, plan

    root = tmp_path / "captures" / "cat" / "obj"
    write_colmap_capture(root, n=8)
    cfg = MultiviewConfig(captures=str(tmp_path / "captures"), samples_per_capture=1, captioner=str(vlm_dir),
                          captioner_tokens=TOKENS, scorers=("sharpness",))
    s = _samples(MultiviewItems(cfg)(Item(0, source=str(root)), sample_rng(0, 0)))[0]
    validate(s)
    desc = s.meta["vlm_description"]
    assert s.meta["caption_source"] == "vlm_describe@1+vlm_describe_steps_v1+tiny-random"
    assert desc and s.instruction.endswith(f" Described: {desc}")
    assert "degrees" in s.instruction.split(" Described: ")[0]  # the exact degrees stay first
    ref_cfg = cfg.replace(motion_phrasing="reference")
    s2 = _samples(MultiviewItems(ref_cfg)(Item(0, source=str(root)), sample_rng(0, 0)))[0]
    assert s2.meta["caption_source"] == "vlm_describe@1+vlm_describe_views_v1+tiny-random"
    # The captioner is part of the content key by what it is, not where it lies.
    moved = tmp_path / "elsewhere" / "qwen"
    shutil.copytree(vlm_dir, moved)
    a, b = plan(cfg).content["captioner"], plan(cfg.replace(captioner=str(moved))).content["captioner"]
    assert a == b and a["tiny_random"] and "captioner" not in plan(cfg.replace(captioner=None)).content


def test_missing_captioner_fails_before_any_work(tmp_path, story_clip):
    from datagen import products

    missing = tmp_path / "no-vlm"
    missing.mkdir()
    for name, values in (("storyboard", {"videos": str(story_clip.parent)}),
                         ("multiview", {"captures": str(tmp_path)})):
        product = products.get(name)
        cfg = product.make_config({**values, "captioner": str(missing)})
        with pytest.raises(MissingWeights, match="config.json") as err:
            product.preflight(cfg)
        assert str(missing) in str(err.value)
        assert any(p.flag == "--captioner" and not p.content for p in product.config.params())


def test_describer_text_is_clean(vlm_dir):
    from datagen.scoring.vlm_describe import clean_text

    assert clean_text("The camera\x07 orbits <image 3> left\n\tslowly.", 100) == "The camera orbits left slowly."
    assert clean_text("<image 1>", 100) == "" and clean_text("abcdef", 3) == "abc"
    assert np.all([c.isprintable() for c in clean_text("a\x13b", 10)])
