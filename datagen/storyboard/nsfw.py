"""NSFW filter hook: a transformers image classifier loaded from a local folder.

Any `AutoModelForImageClassification` folder works (e.g. a ViT fine-tuned for NSFW
detection, such as Falconsai/nsfw_image_detection, copied to disk). Which labels count as
unsafe is read from the model's `id2label`: names in `UNSAFE_LABELS` unless `unsafe_labels`
is given. The probability is the summed softmax mass of the unsafe labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datagen.images import to_rgb
from datagen.schema import Reject
from datagen.weights import is_tiny_random, require_file, require_hf_folder

UNSAFE_LABELS = {"nsfw", "porn", "hentai", "sexy", "explicit", "unsafe", "nude", "nudity"}


class NSFWFilter:
    def __init__(
        self,
        model_dir: str | Path,
        *,
        threshold: float = 0.5,
        unsafe_labels: set[str] | None = None,
        device: str = "cpu",
        batch_size: int = 16,
    ):
        self.model_dir = Path(model_dir)
        self.threshold = threshold
        self.unsafe_labels = {s.lower() for s in (unsafe_labels or UNSAFE_LABELS)}
        self.device = device
        self.batch_size = batch_size
        self.model = self.processor = None
        self.unsafe_ids: list[int] = []
        tiny = "+tiny-random" if is_tiny_random(self.model_dir) else ""
        self.tag = f"nsfw_filter@1{tiny}"

    def setup(self) -> None:
        if self.model is not None:
            return
        require_hf_folder(self.model_dir, "NSFW classifier")
        require_file(self.model_dir / "preprocessor_config.json", "NSFW classifier")
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        self.processor = AutoImageProcessor.from_pretrained(self.model_dir, local_files_only=True)
        self.model = AutoModelForImageClassification.from_pretrained(self.model_dir, local_files_only=True)
        self.model.to(self.device).eval()
        labels = {int(i): str(n) for i, n in self.model.config.id2label.items()}
        self.unsafe_ids = sorted(i for i, n in labels.items() if n.lower() in self.unsafe_labels)
        if not self.unsafe_ids:
            raise ValueError(
                f"NSFW classifier in {self.model_dir}: none of its labels {sorted(labels.values())} "
                f"is unsafe by {sorted(self.unsafe_labels)}; pass unsafe_labels="
            )

    def probabilities(self, images: list[np.ndarray]) -> list[float]:
        """Unsafe probability of each image."""
        import torch

        self.setup()
        out: list[float] = []
        for start in range(0, len(images), self.batch_size):
            chunk = [to_rgb(im) for im in images[start : start + self.batch_size]]
            batch = self.processor(images=chunk, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                probs = torch.softmax(self.model(**batch).logits.float(), dim=-1)
            out += probs[:, self.unsafe_ids].sum(dim=-1).cpu().tolist()
        return out

    def __call__(self, img: np.ndarray) -> Reject | None:
        p = self.probabilities([img])[0]
        if p >= self.threshold:
            return Reject(reason="nsfw", detail=f"unsafe probability {p:.3f} >= {self.threshold}", stage="filter", generator=self.tag)
        return None
