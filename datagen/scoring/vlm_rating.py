"""Q-Align style VLM rating: read the model's probabilities over rating words, generate nothing.

The prompt ends the assistant turn with a prefix ("The quality of the image(s) is"), so the
next token is where the model would say "excellent" ... "bad". The score is the expected
value of the levels under the model's distribution restricted to those words. When the
words together get less than `min_mass` of the probability, the model is not answering on
the scale at all and the sample is rejected (`vlm_off_scale`) instead of being given a
renormalised number that means nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from datagen.prompts import load_prompt
from datagen.schema import Sample
from datagen.scoring.base import Scorer, ScoreResult
from datagen.weights import is_tiny_random
from datagen.scoring.vlm_backend import VLMBackend, sample_query


def rating_from_logprobs(logprobs: np.ndarray, word_ids: list[int], values: list[float]) -> tuple[float, float]:
    """(expected level value, probability mass on the level words) from one row of log-probs."""
    p = np.exp(logprobs[word_ids].astype(np.float64))
    mass = float(p.sum())
    if mass <= 0.0:
        return float("nan"), 0.0
    return float(p @ np.asarray(values, np.float64) / mass), mass


class VLMRatingScorer(Scorer):
    name = "vlm_rating"
    base_version = "1"

    def __init__(
        self,
        model_dir: str | Path,
        prompt: str = "vlm_rating_quality_v1",
        *,
        score_key: str | None = None,
        min_mass: float = 0.5,
        batch_size: int = 4,
        max_images: int = 8,
        max_side: int = 448,
        device: str = "cpu",
        dtype: str = "float32",
        prompt_dir: str | Path | None = None,
    ):
        super().__init__()
        self.prompt = load_prompt(prompt, prompt_dir)
        levels = [ln.split() for ln in self.prompt.lines("levels")]
        self.words = [w for w, _ in levels]
        self.values = [float(v) for _, v in levels]
        self.score_key = score_key or "vlm_" + re.sub(r"^vlm_rating_|_v\d+$", "", prompt)
        self.min_mass = min_mass
        self.batch_size = batch_size
        self.max_images = max_images
        self.backend = VLMBackend(model_dir, device=device, dtype=dtype, max_side=max_side)
        tiny = "+tiny-random" if is_tiny_random(model_dir) else ""
        self.version = f"{self.base_version}+{prompt}{tiny}"
        self.word_ids: list[int] = []

    def load(self) -> None:
        self.backend.load()
        self.word_ids = self.backend.first_token_ids(self.words)

    def score_batch(self, samples: list[Sample]) -> list[ScoreResult]:
        out: list[ScoreResult] = []
        for start in range(0, len(samples), self.batch_size):
            chunk = samples[start : start + self.batch_size]
            queries = [
                sample_query(
                    s,
                    self.prompt.render("user", n_images=len(s.inputs) + len(s.outputs)),
                    self.prompt.section("assistant"),
                    self.max_images,
                )
                for s in chunk
            ]
            logprobs = self.backend.next_token_logprobs(queries)
            for s, row in zip(chunk, logprobs):
                value, mass = rating_from_logprobs(row, self.word_ids, self.values)
                if mass < self.min_mass:
                    top = np.argsort(row)[::-1][:5]
                    said = [self.backend.tokenizer.decode([int(t)]) for t in top]
                    out.append(
                        self.reject(
                            "vlm_off_scale",
                            f"rating words {self.words} got {mass:.1%} of the next-token probability "
                            f"(< {self.min_mass:.0%}); most likely next tokens: {said}",
                            s,
                        )
                    )
                    continue
                out.append({self.score_key: value, f"{self.score_key}_mass": mass})
        return out
