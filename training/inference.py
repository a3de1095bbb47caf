"""Sample from a training checkpoint: input image files + instruction -> output PNGs.

Input files are untrusted: they go through `datagen.images.load_image` (decompression
bombs, truncated files, odd modes are refused with a reason). They are fitted to the
training bucket closest to their aspect ratio, as training data was. Outputs are written
with a `sample.json` that records the checkpoint, its step and every sampling setting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.buckets import Bucket, assign_buckets, fit_to_bucket
from training.config import TrainConfig


@dataclass
class LoadedCheckpoint:
    path: Path
    model: object  # models.dit.UnifiedDiT
    config: TrainConfig
    step: int
    buckets: list[Bucket]


def load_for_sampling(path: str | Path) -> LoadedCheckpoint:
    from models.checkpoint import load_checkpoint
    from training.job import latest_checkpoint

    folder = latest_checkpoint(path)
    ckpt = load_checkpoint(folder)
    extra = ckpt.extra or {}
    if "train_config" not in extra:
        raise ValueError(f"{folder} is a model checkpoint without its training config (train_config in config.json)")
    cfg = TrainConfig.from_dict(extra["train_config"])
    buckets = [Bucket(int(h), int(w)) for h, w in extra.get("buckets") or [[cfg.resolution, cfg.resolution]]]
    return LoadedCheckpoint(folder, ckpt.model.eval(), cfg, int(ckpt.step or 0), buckets)


def pick_bucket(buckets: list[Bucket], width: int, height: int) -> Bucket:
    return buckets[int(assign_buckets(np.array([width]), np.array([height]), buckets)[0])]


def parse_size(text: str | None, default: Bucket) -> Bucket:
    """'48x64' (height x width) -> Bucket; None -> the default."""
    if not text:
        return default
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size {text!r} is not HEIGHTxWIDTH, e.g. 32x32") from None
    return Bucket(h, w)


def sample_checkpoint(checkpoint: str | Path, inputs: list[str | Path], instruction: str, out: str | Path, *,
                      steps: int = 28, cfg_scale: float = 4.0, seed: int = 0, n_outputs: int = 1,
                      size: str | None = None) -> list[Path]:
    """Write `output_<k>.png` (+ the fitted inputs and sample.json) into `out`; return the output paths."""
    from datagen.images import encode_png, load_image
    from datagen.store.lineage import file_hash
    from models.image_space import load_image_space
    from models.sampling import sample
    from models.text_encoder import TextEncoder

    loaded = load_for_sampling(checkpoint)
    model, tc = loaded.model, loaded.config
    if len(inputs) > model.config.max_inputs:
        raise ValueError(f"{len(inputs)} inputs; this model takes at most {model.config.max_inputs}")
    pictures = [load_image(str(p), keep_alpha=True).pixels for p in inputs]  # ImageRejected names the reason
    if pictures:
        first = pictures[0]
        bucket = pick_bucket(loaded.buckets, first.shape[1], first.shape[0])
    else:
        bucket = parse_size(size, pick_bucket(loaded.buckets, 1, 1))
    fitted = [fit_to_bucket(p, bucket) for p in pictures]
    space = load_image_space(None if tc.image_space == "pixels" else tc.image_space)
    encoder = TextEncoder(tc.text_encoder or None)
    images = sample(model, fitted, instruction, steps=steps, cfg=cfg_scale, seed=seed, n_outputs=n_outputs,
                    size=(bucket.height, bucket.width), text_encoder=encoder, image_space=space)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, im in enumerate(fitted):
        (out / f"input_{k + 1}.png").write_bytes(encode_png(im))
    for k, im in enumerate(images):
        path = out / f"output_{k + 1}.png"
        path.write_bytes(encode_png(np.ascontiguousarray(im)))
        paths.append(path)
    record = {"checkpoint": str(loaded.path), "step": loaded.step, "instruction": instruction,
              "inputs": [{"path": str(p), "sha256": file_hash(p)} for p in inputs],
              "bucket": [bucket.height, bucket.width], "steps": steps, "cfg": cfg_scale, "seed": seed,
              "outputs": [p.name for p in paths]}
    (out / "sample.json").write_text(json.dumps(record, indent=1))
    return paths
