"""Tiny random-weight stand-ins for every model-backed step, saved in the real on-disk layouts.

For tests and benchmarks only (no product module imports this package). They run the exact
loading and inference code of the scorers (Qwen2.5-VL, open_clip), the storyboard
(Stable-Diffusion-layout diffusers pipeline, NSFW classifier) and the condition annotators
(controlnet_aux's own model classes, Depth-Anything-V2) end to end on a machine without
weights. Their outputs mean nothing: HF/open_clip configs carry `"unimontage_tiny_random":
true` and diffusers folders a marker file (`datagen.weights.is_tiny_random` reads both), so
every version tag derived from them says "+tiny-random". The annotator checkpoints keep the
real shapes, so they also give the real compute cost.
"""

from __future__ import annotations

import gzip
import json
import math
import shutil
from pathlib import Path
from typing import Any, Callable

from datagen.conditions.controlnet_aux_backend import import_controlnet_aux
from datagen.prompts import PROMPT_DIR
from datagen.weights import TINY_MARKER


# --------------------------------------------------------------------------- scorers (VLM, CLIP)
# Qwen2-VL's own chat template (the one shipped with Qwen/Qwen2.5-VL-*-Instruct), so prompt
# layout and image placement in tests are what a real checkpoint would see.
QWEN_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture "
    "{{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video "
    "{{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QWEN_SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]


def _train_bpe(vocab_size: int, special: list[str]):
    """A small byte-level BPE trained on our own prompt files, so rating words are whole tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    corpus = [p.read_text(encoding="utf-8") for p in sorted(PROMPT_DIR.glob("*.txt"))]
    # Leading spaces: after "... is" a real BPE tokenizer sees " good", not "good".
    words = " excellent good fair poor bad consistency instruction quality subject panel image camera"
    corpus += [words] * 50 + ['{"consistency": 4, "instruction": 3, "quality": 5}'] * 20
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    return tok


def make_tiny_qwen2_5_vl(folder: str | Path, seed: int = 0, vocab_size: int = 600) -> Path:
    """A ~0.3M-parameter Qwen2.5-VL with a real processor (image + video processor, BPE
    tokenizer, chat template) in HF layout; loads with AutoProcessor/AutoModelForImageTextToText."""
    import torch
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bpe = _train_bpe(vocab_size, QWEN_SPECIAL)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=QWEN_SPECIAL[1:],
    )
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL}
    # Few pixels per image keeps the sequence short: 56x56 -> 4 patches after 2x2 merging.
    size = {"shortest_edge": 28 * 28, "longest_edge": 56 * 56}
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(size=size),
        chat_template=QWEN_CHAT_TEMPLATE,
    )
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 2048,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 1,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 32,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 56,
            "fullatt_block_indexes": [0],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    setattr(config, TINY_MARKER, True)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def make_tiny_open_clip(folder: str | Path, seed: int = 0) -> Path:
    """A tiny ViT CLIP in open_clip's local-dir layout (open_clip_config.json + safetensors).

    It keeps CLIP's real text vocabulary (49408 BPE tokens, shipped inside open_clip), so the
    tokenizer is the production one."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model_cfg = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    config = {
        "model_cfg": model_cfg,
        "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]},
        TINY_MARKER: True,
    }
    torch.manual_seed(seed)
    model = open_clip.CLIP(**model_cfg)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    return folder


def mark_tiny_random(folder: str | Path) -> None:
    """Marker file for layouts whose configs must not carry extra keys (diffusers warns)."""
    (Path(folder) / TINY_MARKER).write_text("random weights: outputs are meaningless\n")


# --------------------------------------------------------------------------- storyboard (diffusers, NSFW)
def write_clip_tokenizer_files(folder: Path, n_merges: int = 48894) -> Path:
    """CLIP's BPE tokenizer (vocab.json + merges.txt), rebuilt from the merge list that
    open_clip ships, the same way CLIP's SimpleTokenizer builds its vocabulary. Fewer than
    all 48894 merges gives a smaller but still valid tokenizer (rarer words split further)."""
    import open_clip
    from open_clip.tokenizer import bytes_to_unicode

    bpe = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    merges = gzip.open(bpe).read().decode("utf-8").split("\n")[1 : 1 + min(n_merges, 49152 - 256 - 2)]
    pairs = [tuple(m.split()) for m in merges]
    vocab = list(bytes_to_unicode().values())
    vocab += [v + "</w>" for v in vocab]
    vocab += ["".join(p) for p in pairs]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(p) for p in pairs) + "\n")
    return folder


def make_tiny_sd_pipeline(folder: str | Path, seed: int = 0) -> Path:
    """A ~1M-parameter StableDiffusionPipeline; 32x32 panels in a few steps on CPU."""
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    tok_dir = write_clip_tokenizer_files(folder / "_tok_src", n_merges=2000)
    tokenizer = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=77)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=2,
        norm_num_groups=4,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=4,
        sample_size=32,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_attention_heads=2,
            num_hidden_layers=1,
            max_position_embeddings=77,
            projection_dim=16,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, steps_offset=1
    )
    pipe = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    mark_tiny_random(folder)
    shutil.rmtree(tok_dir)
    return folder


def make_tiny_nsfw_classifier(folder: str | Path, seed: int = 0) -> Path:
    """A tiny ViT image classifier with labels {0: "normal", 1: "nsfw"} and its processor."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    folder = Path(folder)
    torch.manual_seed(seed)
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=2,
        id2label={0: "normal", 1: "nsfw"},
        label2id={"normal": 0, "nsfw": 1},
    )
    setattr(config, TINY_MARKER, True)
    ViTForImageClassification(config).eval().save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


# --------------------------------------------------------------------------- condition annotators
def _aux_models() -> dict[str, tuple[Callable[[], Any], Callable[[str], str]]]:
    """file name -> (model factory, state-dict key -> key as stored in the file)."""
    import_controlnet_aux()
    from controlnet_aux.hed import ControlNetHED_Apache2
    from controlnet_aux.lineart import Generator
    from controlnet_aux.mlsd.models.mbv2_mlsd_large import MobileV2_MLSD_Large
    from controlnet_aux.open_pose.face import FaceNet
    from controlnet_aux.open_pose.model import bodypose_model, handpose_model

    same: Callable[[str], str] = lambda k: k  # noqa: E731

    def drop_first(k: str) -> str:  # the pose files predate the model's stage grouping
        return k.split(".", 1)[1]

    return {
        "ControlNetHED.pth": (ControlNetHED_Apache2, same),
        "sk_model.pth": (lambda: Generator(3, 1, 3), same),
        "sk_model2.pth": (lambda: Generator(3, 1, 3), same),
        "body_pose_model.pth": (bodypose_model, drop_first),
        "hand_pose_model.pth": (handpose_model, drop_first),
        "facenet.pth": (FaceNet, same),
        "mlsd_large_512_fp32.pth": (MobileV2_MLSD_Large, same),
    }


AUX_FILES = ("ControlNetHED.pth", "sk_model.pth", "sk_model2.pth", "body_pose_model.pth",
             "hand_pose_model.pth", "facenet.pth", "mlsd_large_512_fp32.pth")


def random_state_dict(model: Any, seed: int) -> dict[str, Any]:
    """Same keys, shapes and dtypes as `model.state_dict()`; values from a seeded generator.

    Weights are uniform in +-1/sqrt(fan_in) (PyTorch's default conv init), batch-norm
    statistics stay neutral (mean 0, variance 1), integer buffers are kept.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in model.state_dict().items():
        if not value.is_floating_point():
            out[key] = value.clone()
        elif key.endswith("running_mean"):
            out[key] = torch.zeros_like(value)
        elif key.endswith("running_var"):
            out[key] = torch.ones_like(value)
        else:
            fan_in = math.prod(value.shape[1:]) if value.ndim > 1 else value.numel()
            bound = 1.0 / math.sqrt(max(1, fan_in))
            out[key] = (torch.rand(value.shape, generator=gen, dtype=torch.float32) * 2 - 1).mul_(bound).to(value.dtype)
    return out


def write_annotators_dir(folder: str | Path, files: tuple[str, ...] = AUX_FILES, seed: int = 0) -> Path:
    """Write random-weight `files` in lllyasviel/Annotators layout into `folder`."""
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    models = _aux_models()
    for k, name in enumerate(files):
        factory, rename = models[name]
        state = random_state_dict(factory(), seed + k)
        torch.save({rename(key): v for key, v in state.items()}, folder / name)
    return folder


def depth_anything_config(size: str = "tiny", seed: int = 0) -> Any:
    """`tiny`: a few thousand parameters, seconds-free. `small`: Depth-Anything-V2-Small's shapes."""
    from transformers import DepthAnythingConfig, Dinov2Config

    if size == "small":
        return DepthAnythingConfig()  # its defaults are the V2-Small architecture
    if size != "tiny":
        raise ValueError(f"size must be 'tiny' or 'small', not {size!r}")
    backbone = Dinov2Config(image_size=518, patch_size=14, hidden_size=32, num_hidden_layers=4,
                            num_attention_heads=2, intermediate_size=64, out_indices=[1, 2, 3, 4],
                            reshape_hidden_states=False, initializer_range=0.1)
    # A wide init keeps the ReLU head's output from collapsing to a constant.
    return DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
                               fusion_hidden_size=16, head_hidden_size=8, initializer_range=0.1)


def write_depth_anything_dir(folder: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """A random-weight Depth-Anything-V2 folder in HF layout, with the real preprocessor config."""
    import torch
    from transformers import DepthAnythingForDepthEstimation, DPTImageProcessor

    folder = Path(folder)
    with torch.random.fork_rng():  # transformers initialises from the global RNG
        torch.manual_seed(seed)
        model = DepthAnythingForDepthEstimation(depth_anything_config(size, seed))
    model.save_pretrained(folder)
    DPTImageProcessor(  # as in depth-anything/Depth-Anything-V2-Small-hf
        do_resize=True, size={"height": 518, "width": 518}, keep_aspect_ratio=True, ensure_multiple_of=14,
        resample=3, do_rescale=True, do_normalize=True,
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(folder)
    return folder
