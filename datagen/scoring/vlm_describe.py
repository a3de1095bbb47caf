"""Free-text descriptions from a local VLM: storyboard panel captions, multi-view notes.

Not a scorer: it returns text for the sample record. An empty answer comes back as None so
the caller can reject or fall back openly; text is never invented here. `<image k>` tags a
model writes are removed: in a sample's instruction they would name inputs it does not have.

Products take a `--captioner DIR` (storyboard panel captions, multi-view motion notes):
`check_captioner` runs on the driver before any work, `captioner_identity` goes into the
plan's content key (weights are named by their files' names and sizes, not re-read), and each
worker builds one `VLMDescriber`.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from pathlib import Path

import numpy as np

from datagen.prompts import load_prompt
from datagen.schema import PLACEHOLDER
from datagen.weights import is_tiny_random
from datagen.scoring.vlm_backend import VLMBackend, VLMQuery


class VLMDescriber:
    def __init__(
        self,
        model_dir: str | Path,
        prompt: str = "vlm_caption_panel_v1",
        *,
        max_new_tokens: int = 48,
        max_chars: int = 300,
        batch_size: int = 4,
        max_side: int = 448,
        device: str = "cpu",
        dtype: str = "float32",
        prompt_dir: str | Path | None = None,
    ):
        self.prompt = load_prompt(prompt, prompt_dir)
        self.max_new_tokens = max_new_tokens
        self.max_chars = max_chars
        self.batch_size = batch_size
        self.backend = VLMBackend(model_dir, device=device, dtype=dtype, max_side=max_side)
        tiny = "+tiny-random" if is_tiny_random(model_dir) else ""
        self.tag = f"vlm_describe@1+{prompt}{tiny}"

    def setup(self) -> None:
        self.backend.load()

    def __call__(self, image_groups: list[list[np.ndarray]], fields: list[dict]) -> list[str | None]:
        """One answer per group of images; `fields` fill the prompt's placeholders."""
        self.setup()
        answers: list[str | None] = []
        for start in range(0, len(image_groups), self.batch_size):
            groups = image_groups[start : start + self.batch_size]
            queries = [
                VLMQuery(g, [""] * len(g), self.prompt.render("user", **f))
                for g, f in zip(groups, fields[start : start + self.batch_size])
            ]
            for text in self.backend.generate(queries, self.max_new_tokens):
                answers.append(clean_text(text, self.max_chars) or None)
        return answers


def clean_text(text: str, max_chars: int) -> str:
    """One line of printable text: no `<image k>` tags, no control characters, single spaces."""
    text = PLACEHOLDER.sub(" ", text)
    text = "".join(ch if not unicodedata.category(ch).startswith("C") else " " for ch in text)
    return " ".join(text.split())[:max_chars].strip()


def check_captioner(model_dir: str | Path) -> None:
    """MissingWeights naming the file and folder when `model_dir` is not a usable VLM folder."""
    VLMBackend(model_dir).check_files()


# Small files that define the model and its text; the weights are named by file name and size.
IDENTITY_FILES = ("config.json", "generation_config.json", "preprocessor_config.json", "processor_config.json",
                  "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "chat_template.json",
                  "chat_template.jinja")


def captioner_identity(model_dir: str | Path, prompt: str) -> dict:
    """What decides a captioner's words, location-independent and cheap to compute: the
    config/tokenizer files' bytes, the weight files' names and sizes, and the prompt file."""
    folder = Path(model_dir)
    h = hashlib.sha256()
    for name in IDENTITY_FILES:
        if (folder / name).is_file():
            h.update(name.encode() + b"\0" + (folder / name).read_bytes())
    weights = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin") or p.name.endswith(".index.json"))
    h.update(json.dumps([[p.name, p.stat().st_size] for p in weights]).encode())
    return {"model": h.hexdigest(), "prompt": prompt, "tiny_random": is_tiny_random(folder)}
