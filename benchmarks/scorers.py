"""Scorer throughput per backend: samples/s and images/s as the flow calls them (one batch).

    .venv/bin/python -m benchmarks.scorers [--samples 16] [--side 384] [--only clip,vlm_rating]

(`make bench` calls `main()`, which returns the markdown table.)

Samples are real photos (scikit-image): each has one reference and two outputs at `side` px,
the shape of a 2-view multi-view sample or a 2-panel storyboard. Classical scorers run as
shipped. Model-backed scorers run on TINY RANDOM WEIGHTS in the real on-disk layouts
(datagen.testing.tiny_models): the numbers measure our plumbing (preprocessing, prompt
building, batching, score extraction), not the cost of a real CLIP or Qwen2.5-VL, which is
orders of magnitude more compute per image. Writes benchmarks/results/scorers.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import skimage.data

from datagen.schema import Picture, Sample
from datagen.scoring import (
    CLIPScorer,
    ConsistencyScorer,
    DiversityScorer,
    ExposureScorer,
    GeometricConsistencyScorer,
    SharpnessScorer,
    VLMRatingScorer,
    VLMRubricScorer,
)

RESULTS = Path(__file__).resolve().parent / "results"


def samples(n: int, side: int) -> list[Sample]:
    left, right, _ = skimage.data.stereo_motorcycle()
    photos = [left, right, skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]

    def fit(img):
        return np.ascontiguousarray(cv2.resize(img, (side, side * img.shape[0] // img.shape[1]), interpolation=cv2.INTER_AREA))

    photos = [fit(p) for p in photos]
    out = []
    for k in range(n):
        ref, a, b = photos[k % 6], photos[(k + 1) % 6], photos[(k + 2) % 6]
        out.append(
            Sample(
                "storyboard",
                "Create a 2-panel storyboard with the character in <image 1>.",
                [Picture(ref, "reference")],
                [Picture(a, "target"), Picture(b, "target")],
                meta={"captions": ["a motorbike in a garage", "a woman in a space suit"]},
                source_ids=[f"bench/{k}"],
            )
        )
    return out


def cases(tmp: Path) -> list[tuple[str, str, Any]]:
    """(label, weights note, factory); factories build lazily so --only skips unused models."""
    from datagen.testing.tiny_models import make_tiny_open_clip, make_tiny_qwen2_5_vl

    vlm = lambda: make_tiny_qwen2_5_vl(tmp / "qwen") if not (tmp / "qwen").exists() else tmp / "qwen"  # noqa: E731
    return [
        ("sharpness", "none", SharpnessScorer),
        ("exposure", "none", ExposureScorer),
        ("geo_consistency (SIFT+MAGSAC)", "none", GeometricConsistencyScorer),
        ("consistency (colour+HOG)", "none", ConsistencyScorer),
        ("diversity (pHash)", "none", DiversityScorer),
        ("clip", "tiny random ViT", lambda: CLIPScorer(make_tiny_open_clip(tmp / "clip"), batch_size=32)),
        ("vlm_rating (Q-Align logits)", "tiny random Qwen2.5-VL", lambda: VLMRatingScorer(vlm(), min_mass=0.0, batch_size=4)),
        ("vlm_rubric (JSON, 32 new tokens)", "tiny random Qwen2.5-VL", lambda: VLMRubricScorer(vlm(), batch_size=4, max_new_tokens=32)),
    ]


def measure(factory, batch: list[Sample]) -> dict[str, float]:
    scorer = factory()
    t0 = time.perf_counter()
    scorer.setup()
    setup_s = time.perf_counter() - t0
    scorer(batch[:1])  # warm-up: lazy kernels, first-call allocations
    t0 = time.perf_counter()
    results = scorer(batch)
    dt = time.perf_counter() - t0
    n_img = sum(len(s.inputs) + len(s.outputs) for s in batch)
    rejected = sum(not isinstance(r, dict) for r in results)
    return {"setup_s": setup_s, "samples_s": len(batch) / dt, "images_s": n_img / dt, "ms_per_sample": 1000 * dt / len(batch), "rejected": rejected, "scorer": scorer.tag}


def markdown(rows: list[dict[str, Any]], env: dict[str, Any]) -> str:
    lines = [
        "# Scorers: throughput per backend",
        "",
        f"{env['samples']} samples of 1 reference + 2 outputs (real photos, {env['side']} px wide), scored in one "
        f"call as the flow does; {env['cpus']} CPUs (load average {env['load_average']} at the end, this "
        "benchmark's own load included), "
        f"torch threads {env['torch_threads']}. One run each: rough numbers.",
        "**Model-backed rows use tiny random weights** in the real layouts: they time our plumbing (preprocessing, "
        "prompt layout, batching, score extraction), not a real CLIP or Qwen2.5-VL. Random weights never answer on "
        "the rating scale or in JSON, so the rubric row's samples are all rejects (parse failures) - as they should be.",
        "",
        "| scorer | weights | samples/s | images/s | ms/sample | rejected | setup s | tag |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['weights']} | {r['samples_s']:.2f} | {r['images_s']:.2f} | {r['ms_per_sample']:.1f} | "
            f"{r['rejected']} | {r['setup_s']:.2f} | `{r['scorer']}` |"
        )
    return "\n".join(lines) + "\n"


def main(n_samples: int = 16, side: int = 384, only: list[str] | None = None) -> str:
    import torch

    # Tiny models on a shared machine: one thread avoids inter-op spinning that costs more than the maths.
    torch.set_num_threads(1)
    batch = samples(n_samples, side)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, weights, factory in cases(Path(tmp)):
            if only and not any(o in label for o in only):
                continue
            print(f"  {label} ...", flush=True)
            rows.append({"label": label, "weights": weights, **measure(factory, batch)})
    env = {
        "samples": n_samples,
        "side": side,
        "cpus": os.cpu_count(),
        "load_average": round(os.getloadavg()[0], 1),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scorers.json").write_text(json.dumps({"env": env, "rows": rows}, indent=2))
    md = markdown(rows, env)
    return md


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--side", type=int, default=384)
    p.add_argument("--only", default="", help="comma-separated substrings of scorer labels")
    a = p.parse_args()
    print(main(a.samples, a.side, [s for s in a.only.split(",") if s] or None))
