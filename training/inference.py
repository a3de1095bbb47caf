"""Sample from a training checkpoint: input image files + instruction -> output PNGs.

Input files are untrusted: they go through `datagen.images.load_image` (decompression
bombs, truncated files, odd modes are refused with a reason). Each keeps its own aspect
ratio and is fitted to the pixel budget of the checkpoint's stage, as training data was
(`training/sizes.py`). Outputs take the first input's fitted size (or `--size`). Outputs
are written with a `sample.json` that records the checkpoint, its step and every sampling
setting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.config import TrainConfig
from training.sizes import fit_image, fit_size


@dataclass
class LoadedCheckpoint:
    path: Path | str  # a local folder, or an object-storage URI
    model: object  # models.dit.UnifiedDiT
    config: TrainConfig
    step: int
    resolution: int  # pixel budget side of the stage the checkpoint was saved in
    multiple: int  # image sides are multiples of this

    def fit(self, pixels: np.ndarray, role: str = "") -> np.ndarray:
        return fit_image(pixels, self.resolution, self.multiple, role)


def load_for_sampling(path: str | Path) -> LoadedCheckpoint:
    """The latest complete checkpoint of `path` (a checkpoint or run folder, local or on object
    storage), its files checked against its lineage node (`checkpointing.CheckpointError`)."""
    from training.checkpointing import load_model
    from training.job import geometry, latest_checkpoint

    folder = latest_checkpoint(path)
    ckpt = load_model(folder)
    extra = ckpt.extra or {}
    if "train_config" not in extra:
        raise ValueError(f"{folder} is a model checkpoint without its training config (train_config in config.json)")
    cfg = TrainConfig.from_dict(extra["train_config"])
    multiple = int((extra.get("geometry") or {}).get("multiple") or geometry(cfg).multiple)
    resolution = int(extra.get("resolution") or cfg.resolution)
    return LoadedCheckpoint(Path(folder) if "://" not in folder else folder, ckpt.model.eval(), cfg, int(ckpt.step or 0), resolution, multiple)


def parse_size(text: str | None) -> tuple[int, int] | None:
    """'48x64' (height x width) -> (48, 64); None -> None."""
    if not text:
        return None
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size {text!r} is not HEIGHTxWIDTH, e.g. 32x32") from None
    return h, w


def sample_checkpoint(checkpoint: str | Path, inputs: list[str | Path], instruction: str, out: str | Path, *,
                      steps: int = 28, cfg_scale: float = 4.0, image_cfg: float = 1.0, seed: int = 0,
                      n_outputs: int = 1, size: str | None = None) -> list[Path]:
    """Write `output_<k>.png` (+ the fitted inputs and sample.json) into `out`; return the output paths."""
    from datagen.images import encode_png, load_image
    from datagen.store.lineage import file_hash
    from models.image_space import load_image_space
    from models.sampling import sample
    from models.text_encoder import TextEncoder
    from training.text_cache import final_text

    loaded = load_for_sampling(checkpoint)
    model, tc = loaded.model, loaded.config
    if len(inputs) > model.config.max_inputs:
        raise ValueError(f"{len(inputs)} inputs; this model takes at most {model.config.max_inputs}")
    pictures = [load_image(str(p), keep_alpha=True).pixels for p in inputs]  # ImageRejected names the reason
    fitted = [loaded.fit(p) for p in pictures]
    asked = parse_size(size)
    if asked:
        out_size = fit_size(*asked, loaded.resolution, loaded.multiple)
    elif fitted:
        out_size = fitted[0].shape[:2]
    else:
        out_size = fit_size(loaded.resolution, loaded.resolution, loaded.resolution, loaded.multiple)
    space = load_image_space(None if tc.image_space == "pixels" else tc.image_space)
    encoder = TextEncoder(tc.text_encoder or None, max_length=tc.text_max_tokens)
    text = final_text(instruction, n_outputs, tc.text_prefix_outputs)
    images = sample(model, fitted, text, steps=steps, cfg=cfg_scale, image_cfg=image_cfg, seed=seed,
                    n_outputs=n_outputs, size=tuple(out_size), text_encoder=encoder, image_space=space)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, im in enumerate(fitted):
        (out / f"input_{k + 1}.png").write_bytes(encode_png(im))
    for k, im in enumerate(images):
        path = out / f"output_{k + 1}.png"
        path.write_bytes(encode_png(np.ascontiguousarray(im)))
        paths.append(path)
    record = {"checkpoint": str(loaded.path), "step": loaded.step, "instruction": instruction, "text": text,
              "inputs": [{"path": str(p), "sha256": file_hash(p), "fitted": list(f.shape[:2])}
                         for p, f in zip(inputs, fitted)],
              "size": list(out_size), "steps": steps, "cfg": cfg_scale, "image_cfg": image_cfg, "seed": seed,
              "outputs": [p.name for p in paths]}
    (out / "sample.json").write_text(json.dumps(record, indent=1))
    return paths
