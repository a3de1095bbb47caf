"""Cutouts from ordinary photos with a local u2net-family ONNX model (rembg's models).

The `rembg` package installs cleanly beside our pins, but pulls numba, llvmlite, pymatting
and pooch (for alpha matting and downloads we never use), and its custom-model session only
accepts files under ~/.u2net. So this module runs the .onnx file with onnxruntime and
reproduces rembg's u2net pre/post-processing exactly (sessions/u2net.py, bg.py):
RGB -> 320x320 LANCZOS -> / max -> ImageNet mean/std -> NCHW float32; output[0][:, 0] ->
min-max normalise -> uint8 -> LANCZOS back to the photo size -> used as the alpha.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datagen.collage.assets import ALPHA_EMPTY, MIN_CUTOUT_SIDE, name_from_stem, read_names
from datagen.collage.pack import Asset
from datagen.folder_listing import list_folder
from datagen.images import ImageRejected, load_image
from datagen.schema import Reject
from datagen.weights import MissingWeights, first_present

# u2net-family files rembg ships; all share the 320x320 input and the processing below.
MODEL_FILES = ("u2net.onnx", "u2netp.onnx", "silueta.onnx", "u2net_human_seg.onnx")
INPUT_SIDE = 320
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@dataclass
class RembgModel:
    path: Path
    session: Any  # onnxruntime.InferenceSession

    def alpha(self, rgb: np.ndarray) -> np.ndarray:
        """Foreground alpha (HxW uint8) of an RGB photo, exactly as rembg computes its mask."""
        from PIL import Image

        img = Image.fromarray(np.ascontiguousarray(rgb[:, :, :3]))
        small = np.array(img.convert("RGB").resize((INPUT_SIDE, INPUT_SIDE), Image.Resampling.LANCZOS))
        x = small / max(np.max(small), 1e-6)
        x = (x - np.asarray(MEAN)) / np.asarray(STD)
        feed = {self.session.get_inputs()[0].name: np.expand_dims(x.transpose((2, 0, 1)), 0).astype(np.float32)}
        pred = self.session.run(None, feed)[0][:, 0, :, :]
        lo, hi = float(np.min(pred)), float(np.max(pred))
        if not np.isfinite(hi - lo) or hi - lo < 1e-12:
            return np.zeros(rgb.shape[:2], np.uint8)  # a constant prediction has no foreground
        pred = np.squeeze((pred - lo) / (hi - lo))
        mask = Image.fromarray((pred.clip(0, 1) * 255).astype(np.uint8), mode="L")
        return np.asarray(mask.resize(img.size, Image.Resampling.LANCZOS))


def load_model(path: str | Path, threads: int = 1) -> RembgModel:
    """Open a .onnx file, or the first of MODEL_FILES in a folder; raise naming what is missing."""
    path = Path(path)
    if path.is_dir():
        found = first_present(path, MODEL_FILES)
        if found is None:
            raise MissingWeights(f"no rembg model in {path}: expected one of {', '.join(MODEL_FILES)} "
                                 f"(e.g. {path / MODEL_FILES[0]}, from rembg's model releases)",
                                 what="rembg", missing=[" or ".join(MODEL_FILES)], folder=path)
        path = found
    elif not path.is_file():
        raise MissingWeights(f"rembg model file {path.name} not found in {path.parent}", what="rembg",
                             missing=[path.name], folder=path.parent)
    import onnxruntime as ort  # heavy; only for this source of cutouts

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads  # one worker, one core: Ray schedules the parallelism
    session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape
    if len(shape) != 4 or shape[1] not in (3, "3") or any(s not in (INPUT_SIDE, str(INPUT_SIDE)) for s in shape[2:]):
        raise ValueError(f"{path} takes input {shape}; a u2net-family model takes 1x3x{INPUT_SIDE}x{INPUT_SIDE}")
    return RembgModel(path, session)


def cutout(model: RembgModel, rgb: np.ndarray, source: str) -> np.ndarray | Reject:
    """Straight-alpha RGBA of the photo's foreground, cropped to it; a Reject when there is none."""
    alpha = model.alpha(rgb)
    solid = alpha > ALPHA_EMPTY
    if not solid.any():
        return Reject("rembg_empty", "the model found no foreground", source, stage="assets")
    if solid.all():
        return Reject("rembg_full", "the model marked the whole photo as foreground", source, stage="assets")
    ys, xs = np.nonzero(solid)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    if min(x1 - x0, y1 - y0) < MIN_CUTOUT_SIDE:
        return Reject("too_small", f"foreground is {x1 - x0}x{y1 - y0}px", source, stage="assets")
    return np.ascontiguousarray(np.dstack([rgb[y0:y1, x0:x1, :3], alpha[y0:y1, x0:x1]]))


def cutouts_from_folder(folder: str | Path, model: RembgModel | str | Path,
                        label: str | None = None) -> tuple[list[Asset], list[Reject]]:
    """One cutout per photo in `folder` (names from stems or folder/names.json), plus Rejects."""
    folder = Path(folder)
    model = model if isinstance(model, RembgModel) else load_model(model)
    names = read_names(folder)
    label = label or folder.resolve().name
    photos = list_folder(folder, recursive=False, skip_hidden=True, keep=lambda rel: rel != "names.json")
    assets, rejects = [], [r.reject(stage="assets") for r in photos.refused]
    for path in photos.paths():
        try:
            rgb = load_image(path, keep_alpha=False).pixels
        except ImageRejected as exc:
            rejects.append(Reject(exc.reason, exc.detail, str(path), stage="assets"))
            continue
        got = cutout(model, rgb, str(path))
        if isinstance(got, Reject):
            rejects.append(got)
            continue
        name = names.get(path.name) or names.get(path.stem) or name_from_stem(path.stem)
        assets.append(Asset(f"{label}:rembg/{path.name}", "cutout", name, got, origin=f"{label}:{path.name}"))
    return assets, rejects
