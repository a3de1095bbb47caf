"""Strict JSON rubric scored by a VLM: the answer is a JSON object or the sample is rejected.

The model is asked for `{"consistency": 4, "instruction": 3, "quality": 5}` (keys and range
come from the prompt file). `parse_rubric` accepts exactly that - optionally inside one
```json fence, since chat models add fences unprompted - and rejects everything else with a
stable reason: `vlm_not_json`, `vlm_wrong_keys`, `vlm_out_of_range`. No score is ever
guessed from free text. Scores: `vlm_rubric_<key>` (the raw integers) and `vlm_rubric`, the
mean rating rescaled to [0, 1].
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from datagen.prompts import load_prompt
from datagen.rejection import Rejected
from datagen.schema import PLACEHOLDER, Sample
from datagen.scoring.base import Scorer, ScoreResult
from datagen.weights import is_tiny_random
from datagen.scoring.vlm_backend import VLMBackend, sample_query

_FENCE = re.compile(r"^```(?:json)?\s*\n?(.*?)\n?```$", re.DOTALL)


class RubricError(Rejected):
    """A VLM answer that is not the rubric's JSON: a reject, never a guessed score."""


def parse_rubric(text: str, keys: list[str], lo: int, hi: int) -> dict[str, int]:
    raw = text.strip()
    m = _FENCE.match(raw)
    if m:
        raw = m.group(1).strip()
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        raise RubricError("vlm_not_json", f"{exc}; answer was {text[:300]!r}") from None
    if not isinstance(obj, dict):
        raise RubricError("vlm_not_json", f"answer is a JSON {type(obj).__name__}, not an object: {text[:300]!r}")
    if sorted(obj) != sorted(keys):
        raise RubricError("vlm_wrong_keys", f"keys {sorted(obj)} != expected {sorted(keys)}")
    out = {}
    for k in keys:
        v = obj[k]
        # bool is an int in Python; a rubric of `true` is not a rating.
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise RubricError("vlm_out_of_range", f"{k}={v!r} is not an integer in [{lo}, {hi}]")
        out[k] = v
    return out


def rubric_scores(rubric: dict[str, int], lo: int, hi: int) -> dict[str, float]:
    # "vlm_rubric_" prefix: the rating scorer may write "vlm_consistency" on the same sample.
    scores = {f"vlm_rubric_{k}": float(v) for k, v in rubric.items()}
    scores["vlm_rubric"] = float(np.mean([(v - lo) / (hi - lo) for v in rubric.values()]))
    return scores


class VLMRubricScorer(Scorer):
    name = "vlm_rubric"
    base_version = "1"

    def __init__(
        self,
        model_dir: str | Path,
        prompt: str = "vlm_rubric_v1",
        *,
        batch_size: int = 4,
        max_new_tokens: int = 64,
        max_images: int = 8,
        max_side: int = 448,
        device: str = "cpu",
        dtype: str = "float32",
        prompt_dir: str | Path | None = None,
    ):
        super().__init__()
        self.prompt = load_prompt(prompt, prompt_dir)
        self.keys = self.prompt.lines("keys")
        lo, hi = (int(v) for v in self.prompt.section("range").split())
        self.lo, self.hi = lo, hi
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.max_images = max_images
        self.backend = VLMBackend(model_dir, device=device, dtype=dtype, max_side=max_side)
        tiny = "+tiny-random" if is_tiny_random(model_dir) else ""
        self.version = f"{self.base_version}+{prompt}{tiny}"

    def load(self) -> None:
        self.backend.load()

    def user_text(self, sample: Sample) -> str:
        # The prompt labels images "Input k"; the instruction says "<image k>" for the same thing.
        instruction = PLACEHOLDER.sub(lambda m: f"Input {m.group(1)}", sample.instruction or "")
        return self.prompt.render("user", task=sample.task, instruction=instruction)

    def score_batch(self, samples: list[Sample]) -> list[ScoreResult]:
        out: list[ScoreResult] = []
        for start in range(0, len(samples), self.batch_size):
            chunk = samples[start : start + self.batch_size]
            queries = [sample_query(s, self.user_text(s), "", self.max_images) for s in chunk]
            answers = self.backend.generate(queries, self.max_new_tokens)
            for s, answer in zip(chunk, answers):
                try:
                    rubric = parse_rubric(answer, self.keys, self.lo, self.hi)
                except RubricError as err:
                    out.append(self.reject(err.reason, err.detail, s))
                    continue
                out.append(rubric_scores(rubric, self.lo, self.hi))
        return out
