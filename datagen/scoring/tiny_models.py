"""Tiny random-weight stand-ins for the scorers' models, saved in the real on-disk layouts.

They exist so tests, benchmarks and the offline demo can run the exact loading and scoring
code of the VLM and CLIP scorers end to end on a machine without weights. Their scores mean
nothing: a dataset scored with them must never be used for training, and they say so in
their config (`"unimontage_tiny_random": true`), which the scorers copy into their version
string ("...+tiny-random").
"""

from __future__ import annotations

import json
from pathlib import Path

from datagen.prompts import PROMPT_DIR

TINY_MARKER = "unimontage_tiny_random"

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


def is_tiny_random(folder: str | Path) -> bool:
    """True for a folder written by a tiny_models module (its outputs are meaningless)."""
    if (Path(folder) / TINY_MARKER).is_file():
        return True
    for name in ("config.json", "open_clip_config.json"):
        path = Path(folder) / name
        if path.is_file():
            try:
                return bool(json.loads(path.read_text()).get(TINY_MARKER, False))
            except ValueError:
                return False
    return False
