"""Keep or reject scored samples by per-score bounds.

Rules are plain data (`{"sharpness": (80.0, None), "vlm_quality": (0.5, None)}`), so a flow
config can carry them and a dataset card can print them. A sample that lacks a score the
rules name is rejected as `score_missing`, never waved through.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from datagen.schema import Reject, Sample
from datagen.scoring.base import scorer_reject

Bounds = tuple[float | None, float | None]


@dataclass
class ThresholdFilter:
    rules: Mapping[str, Bounds]
    name: str = "threshold"
    version: str = "1"
    counts: dict[str, int] = field(default_factory=dict)  # reason -> rejected so far

    def __post_init__(self) -> None:
        for key, bounds in self.rules.items():
            if len(bounds) != 2:
                raise ValueError(f"rule {key!r}: want (min, max), got {bounds!r}")
            lo, hi = bounds
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"rule {key!r}: min {lo} > max {hi}")

    @property
    def tag(self) -> str:
        return f"{self.name}@{self.version}"

    def check(self, sample: Sample) -> Reject | None:
        """None if the sample passes every rule, else a Reject naming the first failed rule."""
        for key, (lo, hi) in self.rules.items():
            if key not in sample.scores:
                have = ", ".join(sorted(sample.scores)) or "none"
                return self._reject("score_missing", f"no score {key!r} (scores: {have})", sample)
            value = sample.scores[key]
            if lo is not None and value < lo:
                return self._reject(f"{key}_below_min", f"{key}={value:.4g} < {lo:.4g}", sample)
            if hi is not None and value > hi:
                return self._reject(f"{key}_above_max", f"{key}={value:.4g} > {hi:.4g}", sample)
        return None

    def apply(self, samples: list[Sample]) -> tuple[list[Sample], list[Reject]]:
        kept: list[Sample] = []
        rejects: list[Reject] = []
        for s in samples:
            rej = self.check(s)
            if rej is None:
                kept.append(s)
            else:
                rejects.append(rej)
        return kept, rejects

    def _reject(self, reason: str, detail: str, sample: Sample) -> Reject:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        rej = scorer_reject(self.tag, reason, detail, sample)
        rej.stage = "filter"
        return rej
