"""The Scorer interface and the one function that applies a scorer to a batch of samples.

A scorer maps a batch of samples to one result per sample: a dict of named scores, or a
`Reject` when it cannot score that sample honestly (unparsable VLM answer, no features to
match, ...). `apply_scorer` writes the scores into `Sample.scores`, appends the scorer's
`name@version` to `Sample.scorer`, and turns per-sample failures into rejects, so a flow
wraps it in Ray's `map_batches` without any logic of its own:

    scorer.setup()                              # once per worker: load weights
    kept, rejects = apply_scorer(scorer, batch)  # per batch
"""

from __future__ import annotations

import math
import traceback

import numpy as np

from datagen.images import to_rgb
from datagen.portable import portable_cv
from datagen.schema import Reject, Sample, quantize

ScoreResult = dict[str, float] | Reject


class Scorer:
    """Base class: subclasses set `name`, `version` and implement `score_batch`."""

    name: str = "scorer"
    version: str = "1"
    batch_size: int = 16  # what the flow should hand to one __call__ (Ray map_batches batch_size)

    def __init__(self) -> None:
        self._ready = False

    @property
    def tag(self) -> str:
        return f"{self.name}@{self.version}"

    def setup(self) -> None:
        """Load weights once per worker; idempotent. Raise here on missing files, before any work."""
        if not self._ready:
            self.load()
            self._ready = True

    def load(self) -> None:  # override in model-backed scorers
        return None

    def __call__(self, samples: list[Sample]) -> list[ScoreResult]:
        self.setup()
        results = self.score_batch(samples)
        if len(results) != len(samples):
            raise RuntimeError(f"{self.tag} returned {len(results)} results for {len(samples)} samples")
        return results

    def score_batch(self, samples: list[Sample]) -> list[ScoreResult]:
        raise NotImplementedError

    def reject(self, reason: str, detail: str, sample: Sample | None = None) -> Reject:
        return scorer_reject(self.tag, reason, detail, sample)


def scorer_reject(tag: str, reason: str, detail: str, sample: Sample | None = None) -> Reject:
    if sample is None:
        return Reject(reason=reason, detail=detail, stage="score", generator=tag)
    return Reject(
        reason=reason,
        detail=detail,
        source=",".join(sample.source_ids),
        task=sample.task,
        stage="score",
        meta={"sample_id": sample.sample_id},
        generator=tag,
        index=sample.index,
        seed=sample.seed,
        run_id=sample.run_id,
    )


def apply_scorer(scorer: Scorer, samples: list[Sample]) -> tuple[list[Sample], list[Reject]]:
    """Score `samples` in place; return (scored samples, rejects). in = kept + rejected.

    If the whole batch raises (one poisoned sample can break a batched forward pass), each
    sample is retried alone so only the culprit becomes a `scorer_error` reject. Setup
    errors (missing weights) are configuration errors and propagate before any work.
    """
    scorer.setup()
    # Classical scorers (SIFT + MAGSAC, histograms, DCT) on OpenCV's baseline kernels: the
    # dispatched float kernels differ per CPU and SIFT's keypoints even vary with threads.
    with portable_cv():
        results = _score(scorer, samples)
    kept: list[Sample] = []
    rejects: list[Reject] = []
    for sample, result in zip(samples, results):
        if isinstance(result, Reject):
            if not result.source and sample.source_ids:
                result = scorer_reject(scorer.tag, result.reason, result.detail, sample)
            rejects.append(result)
            continue
        bad = {k: v for k, v in result.items() if not math.isfinite(float(v))}
        if bad:
            rejects.append(scorer_reject(scorer.tag, "nonfinite_score", f"{bad}", sample))
            continue
        clash = sorted(k for k in result if k in sample.scores)
        if clash:
            # Two scorers writing one key would silently overwrite provenance.
            raise ValueError(f"{scorer.tag} would overwrite score(s) {clash} already on the sample")
        # At the stored precision before any threshold filter sees them.
        sample.scores.update({k: quantize(v) for k, v in result.items()})
        sample.scorer = ",".join(t for t in (sample.scorer, scorer.tag) if t)
        kept.append(sample)
    return kept, rejects


def _score(scorer: Scorer, samples: list[Sample]) -> list[ScoreResult]:
    try:
        return scorer(samples)
    except Exception:
        if len(samples) == 1:
            return [_error_reject(scorer, samples[0])]
        results: list[ScoreResult] = []
        for s in samples:
            try:
                results.extend(scorer([s]))
            except Exception:
                results.append(_error_reject(scorer, s))
        return results


def _error_reject(scorer: Scorer, sample: Sample) -> Reject:
    detail = traceback.format_exc(limit=3)
    return scorer_reject(scorer.tag, "scorer_error", detail, sample)


# --------------------------------------------------------------------------- helpers for scorers
def sample_images(sample: Sample, which: str = "all") -> list[np.ndarray]:
    """RGB pixels of a sample's images: 'inputs', 'outputs' or 'all' (inputs first)."""
    pics = {"inputs": sample.inputs, "outputs": sample.outputs, "all": sample.inputs + sample.outputs}[which]
    return [to_rgb(p.pixels) for p in pics]


def reference_and_targets(sample: Sample) -> tuple[np.ndarray | None, list[np.ndarray]]:
    """The first input (reference view / character reference) and the outputs."""
    ref = to_rgb(sample.inputs[0].pixels) if sample.inputs else None
    return ref, [to_rgb(p.pixels) for p in sample.outputs]

