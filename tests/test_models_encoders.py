"""Text encoders and image spaces from local folders: the real MiniLM, and tiny random-weight
T5 / CLIP-text / Qwen2 / AutoencoderKL / AutoencoderTiny built from configs in a temp dir."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from datagen.weights import MissingWeights
from models.dit import DiTConfig, UnifiedDiT
from models.image_space import PixelSpace, VAESpace, load_image_space
from models.packing import pack, unpack
from models.sampling import sample
from models.text_encoder import TextEncoder, default_text_encoder_path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


@pytest.fixture(scope="module")
def minilm() -> TextEncoder:
    return TextEncoder()


def photo(size: int = 32) -> np.ndarray:
    return cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)


def with_tokenizer(folder):
    """Tiny test models borrow MiniLM's (real, offline) WordPiece tokenizer files."""
    for name in TOKENIZER_FILES:
        shutil.copy(default_text_encoder_path() / name, folder / name)
    return folder


# --------------------------------------------------------------------------- text
def test_default_is_the_packaged_minilm(minilm):
    assert default_text_encoder_path().name == "model"
    assert (default_text_encoder_path() / "model.safetensors").is_file()
    assert minilm.model_type == "bert" and minilm.dim == 384


def test_minilm_embeds_meaning_and_pads_with_a_mask(minilm):
    texts = ["remove the red circle", "delete the red circle", "a photo of the moon over a dark sea tonight"]
    emb = minilm.encode(texts)
    assert emb.tokens.shape[0] == 3 and emb.tokens.shape[2] == 384 and emb.pooled.shape == (3, 384)
    lengths = emb.mask.sum(1).tolist()
    assert max(lengths[0], lengths[1]) < lengths[2] == emb.tokens.shape[1]
    assert emb.tokens[0, lengths[0] :].abs().max() == 0  # padding is zero as well as masked
    torch.testing.assert_close(emb.pooled[0], emb.tokens[0, : lengths[0]].mean(0))  # mean pooling
    cos = torch.nn.functional.cosine_similarity
    assert cos(emb.pooled[0], emb.pooled[1], dim=0) > cos(emb.pooled[0], emb.pooled[2], dim=0) + 0.3


def test_each_instruction_is_encoded_once(minilm):
    calls = []
    handle = minilm.model.register_forward_hook(lambda m, a, kw_out: calls.append(1))
    try:
        first = minilm.encode(["add a blue square", "add a blue square", "remove the cat"])
        assert len(calls) == 1  # one batched forward for the two distinct texts
        again = minilm.encode(["remove the cat", "add a blue square"])
        assert len(calls) == 1  # all cached
    finally:
        handle.remove()
    torch.testing.assert_close(again.pooled[1], first.pooled[0])
    torch.testing.assert_close(first.pooled[0], first.pooled[1])


def test_instruction_to_images_end_to_end(minilm):
    torch.manual_seed(0)
    config = DiTConfig(hidden_size=32, num_heads=2, depth_double=1, depth_single=1, axes_dim=(4, 6, 6), text_dim=384)
    model = UnifiedDiT(config)
    outs = sample(model, [photo(16)], "remove the astronaut", steps=2, cfg=2.0, seed=0, n_outputs=2, text_encoder=minilm)
    assert [o.shape for o in outs] == [(16, 16, 3)] * 2
    # A zero-initialised model predicts zero velocity: the sample is the (clipped) start noise,
    # drawn as patch tokens (2x2 patches, 64 per 16x16 output) and laid back out as images.
    noise = torch.randn(1, 2 * 64, 3 * 2 * 2, generator=torch.Generator().manual_seed(0))
    layout = pack([[torch.zeros(3, 16, 16)]], [[torch.zeros(3, 16, 16)] * 2], patch=2).outputs
    first = unpack(noise, layout, 2)[0][0]
    assert np.array_equal(outs[0], PixelSpace().decode(first).numpy())


@pytest.mark.parametrize("family", ["t5", "clip", "qwen2"])
def test_tiny_random_encoders_load_from_a_local_folder(tmp_path, family):
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        Qwen2Config,
        Qwen2ForCausalLM,
        T5Config,
        T5EncoderModel,
    )

    torch.manual_seed(0)
    vocab = 30522  # the borrowed tokenizer's vocabulary
    if family == "t5":
        model = T5EncoderModel(T5Config(vocab_size=vocab, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4))
    elif family == "clip":
        model = CLIPTextModel(CLIPTextConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                             num_attention_heads=4, bos_token_id=101, eos_token_id=102, pad_token_id=0))
    else:
        model = Qwen2ForCausalLM(Qwen2Config(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                             num_attention_heads=4, num_key_value_heads=2))
    folder = tmp_path / family
    model.save_pretrained(folder)
    enc = TextEncoder(with_tokenizer(folder), max_length=16)
    assert enc.dim == 32
    emb = enc.encode(["make the sky orange", "add a dog"])
    assert emb.tokens.shape[0] == 2 and emb.tokens.shape[2] == 32 and emb.pooled.shape == (2, 32)
    assert emb.mask[0].sum() > emb.mask[1].sum()
    assert torch.isfinite(emb.tokens).all() and torch.isfinite(emb.pooled).all()
    assert not torch.allclose(emb.pooled[0], emb.pooled[1])
    long = enc.encode(["word " * 100])
    assert long.tokens.shape[1] == 16  # truncated to max_length


def test_missing_text_encoder_files_are_named(tmp_path):
    with pytest.raises(MissingWeights, match=f"model folder {tmp_path / 'nope'} does not exist") as err:
        TextEncoder(tmp_path / "nope")
    assert isinstance(err.value, FileNotFoundError) and err.value.folder == tmp_path / "nope"
    (tmp_path / "config.json").write_text('{"model_type": "t5"}')
    with pytest.raises(FileNotFoundError, match=f"missing weights in {tmp_path}.*model.safetensors"):
        TextEncoder(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="missing tokenizer in"):
        TextEncoder(tmp_path)


# --------------------------------------------------------------------------- image spaces
def test_pixel_space_round_trip_is_exact():
    space = load_image_space()
    img = photo()
    x = space.encode(img[None])
    assert x.shape == (1, 3, 32, 32) and x.min() >= -1 and x.max() <= 1
    assert np.array_equal(space.decode(x)[0].numpy(), img)
    with pytest.raises(ValueError, match="uint8"):
        space.encode(img.astype(np.float32))


def tiny_vae(kind: str, folder):
    from diffusers import AutoencoderKL, AutoencoderTiny

    torch.manual_seed(0)
    if kind == "AutoencoderKL":
        vae = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                            block_out_channels=(8, 16), layers_per_block=1, latent_channels=4, norm_num_groups=8,
                            sample_size=32, scaling_factor=0.5, shift_factor=0.1)
    else:
        vae = AutoencoderTiny(encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
                              num_encoder_blocks=(1, 1), num_decoder_blocks=(1, 1), latent_channels=4)
    vae.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("kind", ["AutoencoderKL", "AutoencoderTiny"])
def test_tiny_vaes_load_and_round_trip(tmp_path, kind):
    space = load_image_space(tiny_vae(kind, tmp_path / kind))
    assert isinstance(space, VAESpace) and space.kind == kind
    assert space.channels == 4 and space.downsample == 2
    frames = np.stack([photo(), photo()[:, ::-1]])[None]  # (1, 2, 32, 32, 3): leading dims are kept
    z = space.encode(frames)
    assert z.shape == (1, 2, 4, 16, 16) and torch.isfinite(z).all()
    assert torch.equal(z, space.encode(frames))  # posterior mode: deterministic
    back = space.decode(z)
    assert back.shape == (1, 2, 32, 32, 3) and back.dtype == torch.uint8
    with pytest.raises(ValueError, match="multiple"):
        space.encode(photo(31)[None])
    # The DiT samples in the latent space and returns pixels.
    model = UnifiedDiT(DiTConfig(hidden_size=32, num_heads=2, depth_double=1, depth_single=1, axes_dim=(4, 6, 6),
                                 text_dim=8, in_channels=4))
    from models.text_encoder import TextEmbedding

    text = TextEmbedding(torch.randn(1, 3, 8), torch.ones(1, 3, dtype=torch.bool), torch.randn(1, 8))
    outs = sample(model, [photo()], text, steps=2, cfg=1.0, image_space=space)
    assert outs[0].shape == (32, 32, 3)


def test_missing_vae_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image_space(tmp_path / "vae")
    folder = tiny_vae("AutoencoderKL", tmp_path / "vae")
    (folder / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(MissingWeights, match=f"missing weights in {folder}.*diffusion_pytorch_model.safetensors") as err:
        load_image_space(folder)
    assert err.value.missing == ["diffusion_pytorch_model.safetensors"] and err.value.folder == folder
    (folder / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    (folder / "config.json").write_text('{"_class_name": "VQModel"}')
    with pytest.raises(ValueError, match="supported VAEs"):
        load_image_space(folder)
