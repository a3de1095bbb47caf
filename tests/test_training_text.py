"""Text that arrives whole: the length limit, the count of instructions it cuts, the "Output M
images." prefix, a longer-context encoder, and the per-dataset-version cache."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from models.text_encoder import DEFAULT_MAX_TOKENS, TextEncoder, default_text_encoder_path
from tests.test_training_support import make_text_encoder
from training import text_cache
from training.config import TrainConfig
from training.job import check_text_encoder

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    return make_text_encoder(tmp_path_factory.mktemp("te") / "bert")


def test_the_default_length_keeps_the_longest_demo_instruction_whole():
    """The demo's 4-view multi-view instruction (104 MiniLM tokens, the longest of the demo
    datasets) lost its last view to the earlier hard-coded 77."""
    minilm = TextEncoder()
    views = ("Starting from the camera of <image 1>, show the object after each camera move: view 1: orbit left by "
             "38 degrees, tilt up by 4 degrees and move closer by 5%; view 2: orbit left by 57 degrees, tilt up by 8 "
             "degrees and move closer by 10%; view 3: orbit left by 77 degrees, tilt up by 13 degrees and move closer "
             "by 14%; view 4: orbit left by 97 degrees, tilt up by 18 degrees and move closer by 18%.")
    n = minilm.token_lengths([views])[0]
    assert n == 104 and DEFAULT_MAX_TOKENS == minilm.max_length
    assert minilm.encode([views]).mask.sum() == n  # every token reaches the model


def test_final_text_prefix():
    assert text_cache.final_text("Swap the cup.", 1, False) == "Swap the cup."
    assert text_cache.final_text("Swap the cup.", 1, True) == "Output 1 image. Swap the cup."
    assert text_cache.final_text("Four views.", 4, True) == "Output 4 images. Four views."
    assert text_cache.final_text(None, 2, True) == "Output 2 images."


def test_the_cache_encodes_each_text_once_per_dataset_version_and_counts_cuts(encoder_dir, tmp_path):
    enc = TextEncoder(encoder_dir, max_length=8)
    texts = ["add a red disk", "remove the blue disk from the photo of the astronaut and the rocket", "add a red disk"]
    uri = str(tmp_path / "c.lance")
    ref, rows, stats = text_cache.build(uri, texts, enc)
    assert rows[0] == rows[2] != rows[1] and (stats.texts, stats.encoded) == (2, 2)
    assert stats.truncated == 1 and stats.truncated_rows == 1 and stats.longest > 8
    tokens, pooled = text_cache.read(ref, [int(rows[1])], enc.dim)[0]
    assert tokens.shape == (8, enc.dim)  # cut at max_length
    live_tokens, live_pooled = enc.embed([texts[1]])[0]
    np.testing.assert_allclose(tokens, live_tokens.numpy(), atol=1e-6)
    np.testing.assert_allclose(pooled, live_pooled.numpy(), atol=1e-6)
    # a later run (a new epoch, a new stage, another run on the same version) encodes nothing it has seen
    calls = []
    handle = enc.model.register_forward_hook(lambda m, a, out: calls.append(1))
    try:
        ref2, rows2, stats2 = text_cache.build(uri, texts + ["add a blue disk"], enc)
    finally:
        handle.remove()
    assert stats2.encoded == 1 and len(calls) == 1 and rows2[:3].tolist() == rows.tolist()
    assert ref2 != ref  # a new cache version; the old one still reads the same rows
    # another run racing this one appended the same texts again: every text keeps its first row
    import lance

    lance.write_dataset(lance.dataset(uri).to_table(), uri, mode="append")
    _, rows3, stats3 = text_cache.build(uri, texts, enc)
    assert stats3.encoded == 0 and rows3.tolist() == rows.tolist()
    assert text_cache.read(ref, [int(rows[0])], enc.dim)[0][0].shape[0] > 0
    summary = text_cache.summary([stats, stats2], 8)
    assert summary["truncated"] == 2 and summary["examples"][0] == texts[1]


def test_cache_names_follow_the_dataset_version_and_the_encoder(encoder_dir, tmp_path):
    key8, key16 = text_cache.encoder_key(encoder_dir, 8), text_cache.encoder_key(encoder_dir, 16)
    assert key8 != key16 and key8 == text_cache.encoder_key(encoder_dir, 8)
    a = text_cache.cache_uri(str(tmp_path), "/d/collage.lance@3", key8)
    assert a.startswith(f"{tmp_path}/_text_cache/collage-") and "-v3-" in a
    assert a != text_cache.cache_uri(str(tmp_path), "/d/collage.lance@4", key8)
    assert a != text_cache.cache_uri(str(tmp_path), "/e/collage.lance@3", key8)


def test_a_longer_context_encoder_is_a_folder_away(tmp_path):
    """Absolute-position encoders refuse a length beyond their table, naming the fix; T5's relative
    positions take any length."""
    from transformers import T5Config, T5EncoderModel

    dim = 32
    short = make_text_encoder(tmp_path / "bert")  # 512 positions
    cfg = TrainConfig(text_encoder=str(short), model_overrides={"text_dim": dim}, text_max_tokens=600)
    with pytest.raises(ValueError, match="exceeds the 512 positions.*longer-context encoder"):
        check_text_encoder(cfg)
    with pytest.raises(ValueError, match="exceeds the 512 positions"):
        TextEncoder(short, max_length=600)
    torch.manual_seed(0)
    folder = tmp_path / "t5"
    T5EncoderModel(T5Config(vocab_size=30522, d_model=dim, d_kv=8, d_ff=64, num_layers=1, num_heads=4)).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(default_text_encoder_path() / name, folder / name)
    check_text_encoder(cfg.replace(text_encoder=str(folder)))
    long = TextEncoder(folder, max_length=600)
    assert long.max_positions is None
    text = "a red disk on a blue square " * 60
    n = long.token_lengths([text])[0]
    assert 300 < n <= 600 and long.encode([text]).mask.sum() == n  # whole
