"""Free-text descriptions from a local VLM: storyboard panel captions, multi-view notes.

Not a scorer: it returns text for the sample record. An empty answer comes back as None so
the caller can reject or fall back openly; text is never invented here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datagen.prompts import load_prompt
from datagen.scoring.tiny_models import is_tiny_random
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
                text = " ".join(text.split())[: self.max_chars]
                answers.append(text or None)
        return answers
