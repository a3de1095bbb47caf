"""process_video end to end on the demo clips: records, determinism, captions, VLM plumbing."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from datagen.rng import sample_rng
from datagen.schema import from_row, samples_table, to_row, validate
from datagen.video import VideoPairsConfig, make_demo_clips, process_video
from datagen.video import synthetic as S
from datagen.video.captions import camera_words
from datagen.video.motion import estimate_motion


def pairs_config(**changes) -> VideoPairsConfig:
    """The product config; `videos` (the folder the product lists) is not read by process_video."""
    return VideoPairsConfig(videos="-", **changes)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return {p.stem: p for p in make_demo_clips(tmp_path_factory.mktemp("demo"), seed=0)}


@pytest.fixture(scope="module")
def processed(clips):
    cfg = pairs_config(stitch_min_separation_s=2.0)
    return {name: process_video(p, cfg, sample_rng(11, i)) for i, (name, p) in enumerate(sorted(clips.items()))}


def test_demo_clips(clips):
    assert set(clips) == {"pan", "zoom", "roll", "cuts", "static", "no_time_for_that"}
    assert clips["no_time_for_that"].suffix == ".gif"


def test_records_are_valid_and_round_trip(processed):
    samples = [s for ss, _ in processed.values() for s in ss]
    assert len(samples) >= 15
    for s in samples:
        validate(s)
        assert s.task in ("video.pair", "video.transition", "video.recut")
        assert [p.format for p in s.inputs + s.outputs] == ["jpeg", "jpeg"]
        assert s.source_ids[1].startswith("sha256:") and len(s.source_ids[1]) == 71
        assert s.instruction.count("<image 1>") == 1
        assert {"t_a", "t_b", "gap_s", "shot_a", "shot_b", "source", "stored_resolution"} <= set(s.meta)
    assert len({s.sample_id for s in samples}) == len(samples)
    table = samples_table(samples)
    back = [from_row(r) for r in table.to_pylist()]
    for s, b in zip(samples, back):
        assert b.outputs[0].pixels.shape == s.outputs[0].pixels.shape
        assert np.abs(b.outputs[0].pixels.astype(int) - s.outputs[0].pixels).mean() < 3.0  # JPEG q95
        assert b.scores == pytest.approx(s.scores)


def test_each_clip_gives_what_its_camera_did(processed):
    def pairs(name):
        return [s for s in processed[name][0] if s.meta["kind"] == "pair"]

    assert pairs("pan") and all("pans right" in " ".join(s.meta["camera"]["words"]) for s in pairs("pan"))
    assert pairs("zoom") and all("zooms in" in s.instruction for s in pairs("zoom"))
    assert pairs("roll") and all(s.meta["camera"]["rotation_deg"] > 1.0 for s in pairs("roll"))
    static_samples, static_rejects = processed["static"]
    assert not pairs("static") and "static_pair" in {r.reason for r in static_rejects}
    gif_samples, gif_rejects = processed["no_time_for_that"]
    assert gif_samples == [] and [r.reason for r in gif_rejects] == ["too_small"]
    cut_kinds = [s.meta["kind"] for s in processed["cuts"][0]]
    assert cut_kinds.count("cut") == 2
    # Re-cuts need two shots: only the clip with cuts has them.
    assert cut_kinds.count("recut") == 2
    assert all(s.task != "video.recut" for name, (ss, _) in processed.items() if name != "cuts" for s in ss)


def test_stitched_pairs_are_recropped(processed):
    stitched = [s for ss, _ in processed.values() for s in ss if s.meta["kind"] == "stitched"]
    assert stitched
    lo, hi = pairs_config().recrop_scale
    for s in stitched:
        x0, y0, x1, y1 = s.meta["crop_box"]
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
        assert lo - 0.01 <= x1 - x0 <= hi + 0.01 and (x1 - x0) == pytest.approx(y1 - y0, abs=0.02)
        assert s.meta["t_b"] - s.meta["t_a"] >= 2.0 - 0.05
        assert s.outputs[0].pixels.shape == s.inputs[0].pixels.shape
        assert s.meta["shot_a"] == s.meta["shot_b"]  # a closer framing of the same scene, never across a cut


def _rows(result):
    samples, rejects = result
    rows = [to_row(s) for s in samples]
    return [json.dumps({k: v for k, v in r.items() if k not in ("inputs", "outputs")}, sort_keys=True) for r in rows], [
        (r["inputs"][0]["data"], r["outputs"][0]["data"]) for r in rows
    ], [(r.reason, r.source) for r in rejects]


def test_same_rng_same_bytes_other_rng_other_pairs(clips):
    cfg = pairs_config(stitch_min_separation_s=2.0)
    first = _rows(process_video(clips["pan"], cfg, sample_rng(5, 1)))
    cv2.setNumThreads(1)  # worker count must not matter
    try:
        again = _rows(process_video(clips["pan"], cfg, sample_rng(5, 1)))
    finally:
        cv2.setNumThreads(-1)
    assert first == again
    other = _rows(process_video(clips["pan"], cfg, sample_rng(6, 1)))
    assert other[0] != first[0]


def test_camera_words_follow_the_camera():
    size = (640, 360)
    c = cv2.resize(S.photo("astronaut"), (1536, 1536), interpolation=cv2.INTER_CUBIC)
    a = S.render(c, S.Pose(768.0, 768.0, 1.5), size)
    diag = float(np.hypot(*size))

    def words(pose):
        return camera_words(estimate_motion(a, S.render(c, pose, size)), diag)

    assert words(S.Pose(808.0, 768.0, 1.5)) == ["the camera pans right"]
    assert words(S.Pose(768.0, 740.0, 1.5)) == ["the camera tilts up"]
    assert words(S.Pose(768.0, 768.0, 1.3)) == ["the camera zooms in"]
    assert words(S.Pose(768.0, 768.0, 1.5, 5.0)) == ["the camera rolls clockwise"]
    assert camera_words(estimate_motion(a, a), diag) == []


# --------------------------------------------------------------------------- VLM backend
def _tiny_llava(folder):
    """A random-weight LLaVA (CLIP vision + Llama text) and its processor, saved offline."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    words = ["<unk>", "<pad>", "<s>", "</s>", "<image>", "USER:", "ASSISTANT:", "the", "camera", "pans", "left",
             "right", "zooms", "in", "a", "person", "walks", "scene", "moves", "cut", "to"]  # fmt: skip
    vocab = {w: i for i, w in enumerate(words)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                                  eos_token="</s>", extra_special_tokens={"image_token": "<image>"})  # fmt: skip
    template = ("{% for m in messages %}{{ m['role'].upper() }}: {% for c in m['content'] %}"
                "{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }} {% endif %}{% endfor %}"
                "{% endfor %}ASSISTANT:")  # fmt: skip
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tok, patch_size=8, vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=template,
    )  # fmt: skip
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=2, image_size=32, patch_size=8, projection_dim=32),
        text_config=LlamaConfig(vocab_size=len(words), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                                bos_token_id=2, eos_token_id=3, pad_token_id=1),
        image_token_index=vocab["<image>"], vision_feature_select_strategy="default", vision_feature_layer=-1,
    )  # fmt: skip
    torch.manual_seed(0)
    LlavaForConditionalGeneration(config).eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_vlm_captioner_from_a_local_folder(clips, tmp_path):
    folder = _tiny_llava(tmp_path / "tiny-llava")
    cfg = pairs_config(captioner="vlm", vlm_dir=str(folder), vlm_max_new_tokens=6, stitched_pairs=0)
    samples, _ = process_video(clips["pan"], cfg, sample_rng(0, 0))
    assert samples
    for s in samples:
        validate(s)
        assert s.meta["caption_source"] == "vlm"
        assert s.instruction.startswith("Edit <image 1>: ") and len(s.instruction) > len("Edit <image 1>: ")


def test_missing_model_folders_fail_before_any_work(tmp_path):
    missing = tmp_path / "no-model-here"
    with pytest.raises(FileNotFoundError, match="config.json") as err:
        process_video(tmp_path / "not-even-a-file.mp4", pairs_config(captioner="vlm", vlm_dir=str(missing)),
                      sample_rng(0, 0))  # fmt: skip
    assert str(missing) in str(err.value)
    with pytest.raises(FileNotFoundError, match="raft_small"):
        process_video(tmp_path / "x.mp4", pairs_config(optical_flow="raft", raft_dir=str(missing)), sample_rng(0, 0))
    with pytest.raises(ValueError, match="vlm_dir"):
        pairs_config(captioner="vlm")
