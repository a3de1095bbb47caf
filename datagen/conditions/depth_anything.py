"""Depth maps with Depth-Anything-V2 through transformers, from a local HF-layout folder.

The folder is what `depth-anything/Depth-Anything-V2-{Small,Base,Large}-hf` holds:
config.json, preprocessor_config.json and model.safetensors. The model predicts relative
inverse depth; each map is min-max normalised on its own (near = white), as ControlNet's
depth maps are, so a map does not depend on what else was in the batch. Images are resized
by the checkpoint's own image processor (aspect kept, scaled as little as possible toward
518x518, sides a multiple of 14: large photos get a 518px short side, small ones a 518px
long side), batched by resulting size, and the prediction is resized back to the image's
HxW (bicubic).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from datagen.conditions.base import (
    Annotator,
    default_micro_batch,
    package_version,
    register,
)

DEFAULT_LAYOUT = "Depth-Anything-V2-Small-hf"
HINT = ("download a depth-anything/Depth-Anything-V2-*-hf repository from the Hugging Face hub "
        "into that folder (config.json, preprocessor_config.json, model.safetensors)")


def normalise_depth(depth: np.ndarray) -> np.ndarray:
    """float HxW -> uint8 HxW spanning 0..255; a flat (or non-finite) prediction maps to 0."""
    finite = np.isfinite(depth)
    if not finite.all():
        return np.zeros(depth.shape, dtype=np.uint8)
    lo, hi = float(depth.min()), float(depth.max())
    if not hi > lo:
        return np.zeros(depth.shape, dtype=np.uint8)
    return np.clip((depth.astype(np.float64) - lo) * (255.0 / (hi - lo)) + 0.5, 0, 255).astype(np.uint8)


class DepthAnythingAnnotator(Annotator):
    name = "depth_anything"
    kind = "depth"
    needs_weights = True
    weights_layout = DEFAULT_LAYOUT
    weights_hint = HINT
    code_version = "1"

    def __init__(self, weights_dir: Any = None, device: str = "cpu", resolution: int | None = None,
                 micro_batch: int | None = None):
        super().__init__()
        self.weights_dir, self.device = weights_dir, device
        self.resolution = int(resolution) if resolution else None  # None: the processor's own size
        self.micro_batch = default_micro_batch(device, micro_batch)

    @property
    def version(self) -> str:  # type: ignore[override]
        return f"{self.code_version}+transformers-{package_version('transformers')}"

    def weight_files(self) -> list[str | tuple[str, ...]]:
        return ["config.json", "preprocessor_config.json", ("model.safetensors", "model.safetensors.index.json")]

    def options(self) -> dict[str, Any]:
        return {"resolution": self.resolution}

    def _load(self) -> None:
        import torch
        from transformers import AutoImageProcessor, DepthAnythingForDepthEstimation

        folder = str(self.weights_folder())
        self.processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
        # safetensors only: weight files are untrusted and must not reach pickle.
        model = DepthAnythingForDepthEstimation.from_pretrained(
            folder, local_files_only=True, use_safetensors=True, dtype=torch.float32
        )
        self.model = model.eval().to(self.device)

    def _pixel_values(self, rgb: np.ndarray) -> Any:
        kwargs: dict[str, Any] = {}
        if self.resolution:
            kwargs["size"] = {"height": self.resolution, "width": self.resolution}
        return self.processor(images=[rgb], return_tensors="pt", **kwargs)["pixel_values"]  # 1,3,h,w

    def predict(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Raw relative inverse depth per image, float32 at the image's HxW."""
        import torch
        import torch.nn.functional as F

        self.setup()
        inputs = [self._pixel_values(img) for img in images]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, pv in enumerate(inputs):
            groups.setdefault(tuple(pv.shape[2:]), []).append(i)
        out: list[np.ndarray | None] = [None] * len(images)
        with torch.inference_mode():
            for idx in groups.values():
                for start in range(0, len(idx), self.micro_batch):
                    chunk = idx[start : start + self.micro_batch]
                    pv = torch.cat([inputs[i] for i in chunk]).to(self.device, torch.float32)
                    depth = self.model(pixel_values=pv).predicted_depth  # B,h,w
                    for b, i in enumerate(chunk):
                        h, w = images[i].shape[:2]
                        full = F.interpolate(depth[b][None, None], size=(h, w), mode="bicubic", align_corners=False)
                        out[i] = full[0, 0].float().cpu().numpy()
        return out  # type: ignore[return-value]

    def _annotate(self, images: list[np.ndarray]) -> list[np.ndarray]:
        return [normalise_depth(d) for d in self.predict(images)]


register("depth_anything", DepthAnythingAnnotator)
