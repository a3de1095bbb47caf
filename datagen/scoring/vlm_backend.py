"""A local image-text-to-text model (Qwen2.5-VL, SmolVLM, ...) behind two operations.

`next_token_logprobs` (for Q-Align style rating: one forward pass, no generation) and
`generate` (greedy, for rubrics and captions). Both take `VLMQuery`s: labelled images and a
user text, laid out with the model's own chat template as

    <user> Input 1: <image> Output 1: <image> ... <question> <assistant> <assistant prefix>

Batches are left-padded so position -1 is every row's next token. Any model that
`AutoProcessor` + `AutoModelForImageTextToText` load from a local folder works; nothing is
fetched from a hub.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from datagen.images import to_rgb
from datagen.weights import MissingWeights, first_present, is_tiny_random, require_hf_folder

PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


@dataclass
class VLMQuery:
    images: list[np.ndarray]  # HxWx3 uint8, shown in this order
    labels: list[str]  # one per image, e.g. "Input 1:"; "" for none
    user: str
    assistant_prefix: str = ""  # text the answer is forced to start with
    meta: dict = field(default_factory=dict)


class VLMBackend:
    def __init__(
        self,
        model_dir: str | Path,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        max_side: int = 448,
    ):
        self.model_dir = Path(model_dir)
        self.device = device
        self.dtype = dtype
        self.max_side = max_side
        self.processor = None
        self.model = None

    # ----------------------------------------------------------------------- loading
    def check_files(self) -> None:
        what = "VLM (image-text-to-text model)"
        require_hf_folder(self.model_dir, what)
        for group in (PROCESSOR_FILES, TOKENIZER_FILES):
            if first_present(self.model_dir, group) is None:
                raise MissingWeights(f"{what}: none of {list(group)} found in folder {self.model_dir}", what=what,
                                     missing=[" or ".join(group)], folder=self.model_dir)

    def load(self) -> None:
        if self.model is not None:
            return
        self.check_files()
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.processor = AutoProcessor.from_pretrained(self.model_dir, local_files_only=True)
        self.model = AutoModelForImageTextToText.from_pretrained(
            self.model_dir, local_files_only=True, dtype=getattr(torch, self.dtype)
        )
        self.model.to(self.device).eval()
        tok = self.tokenizer
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token

    @property
    def tokenizer(self):
        return getattr(self.processor, "tokenizer", self.processor)

    @property
    def tiny_random(self) -> bool:
        return is_tiny_random(self.model_dir)

    # ----------------------------------------------------------------------- prompt layout
    def prompt_text(self, query: VLMQuery) -> str:
        content: list[dict] = []
        for label, _ in zip(query.labels, query.images):
            if label:
                content.append({"type": "text", "text": label})
            content.append({"type": "image"})
        content.append({"type": "text", "text": query.user})
        messages = [{"role": "user", "content": content}]
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return text + query.assistant_prefix

    def _fit(self, img: np.ndarray) -> np.ndarray:
        img = to_rgb(img)
        scale = self.max_side / max(img.shape[:2])
        if scale < 1.0:
            img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(img)

    def encode(self, queries: list[VLMQuery]):
        from PIL import Image

        texts = [self.prompt_text(q) for q in queries]
        images = [[Image.fromarray(self._fit(im)) for im in q.images] for q in queries]
        kwargs = {"images": images} if any(images) else {}
        batch = self.processor(text=texts, padding=True, return_tensors="pt", **kwargs)
        return batch.to(self.device)

    # ----------------------------------------------------------------------- operations
    def next_token_logprobs(self, queries: list[VLMQuery]) -> np.ndarray:
        """[B, vocab] log-probabilities of the token after each query's assistant prefix."""
        import torch

        self.load()
        batch = self.encode(queries)
        with torch.inference_mode():
            logits = self.model(**batch).logits[:, -1, :].float()
        return torch.log_softmax(logits, dim=-1).cpu().numpy()

    def generate(self, queries: list[VLMQuery], max_new_tokens: int = 96) -> list[str]:
        """Greedy continuation of each query (deterministic: no sampling)."""
        import torch

        self.load()
        batch = self.encode(queries)
        with torch.inference_mode():
            out = self.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
        new = out[:, batch["input_ids"].shape[1] :]
        return [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]

    def first_token_ids(self, words: list[str]) -> list[int]:
        """Token id each rating word starts with when it follows the prefix (" good")."""
        self.load()
        ids = []
        for w in words:
            toks = self.tokenizer.encode(" " + w, add_special_tokens=False)
            if not toks:
                raise ValueError(f"rating word {w!r} encodes to no tokens")
            ids.append(toks[0])
        if len(set(ids)) != len(ids):
            pieces = [self.tokenizer.convert_ids_to_tokens(i) for i in ids]
            raise ValueError(f"rating words {words} do not start with distinct tokens ({pieces}); choose other words")
        return ids


def sample_query(sample, user: str, assistant_prefix: str = "", max_images: int = 8) -> VLMQuery:
    """Inputs then outputs, each labelled ("Input 1:", "Output 2:") so the prompt can refer to them."""
    images, labels = [], []
    for side, pics in (("Input", sample.inputs), ("Output", sample.outputs)):
        for k, pic in enumerate(pics):
            images.append(pic.pixels)
            labels.append(f"{side} {k + 1}:")
    if len(images) > max_images:
        # Keep the first input and evenly spaced others: the reference matters most.
        keep = sorted({0, *np.linspace(1, len(images) - 1, max_images - 1).round().astype(int).tolist()})
        images = [images[i] for i in keep]
        labels = [labels[i] for i in keep]
    return VLMQuery(images, labels, user, assistant_prefix)
