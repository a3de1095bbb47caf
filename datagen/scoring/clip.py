"""CLIP scores via open_clip from a local checkpoint: image-text alignment, image-image consistency.

Two local layouts load, both without a hub:
- a folder in open_clip's `local-dir` layout: `open_clip_config.json` + `open_clip_model.safetensors`
  (or `open_clip_pytorch_model.bin`), as `open_clip` exports and `hf-hub` repos hold;
- a single checkpoint file plus a built-in architecture name (`model_name="ViT-B-32"`).

Scores are raw cosine similarities (no CLIPScore 2.5x rescale), so thresholds carry across
backbones only as far as cosines do.
- `clip_text`: mean cosine of each output with its caption (`meta["captions"][k]`), or with the
  instruction (placeholders removed) when the sample has no per-output captions;
- `clip_image`: mean cosine of the reference (first input) with each output, or of all output
  pairs when there is no input;
- `clip_image_min`: the weakest of those pairs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datagen.images import to_rgb
from datagen.schema import PLACEHOLDER, Sample
from datagen.scoring.base import Scorer, ScoreResult
from datagen.weights import MissingWeights, is_tiny_random, require_any, require_file

CHECKPOINT_NAMES = [
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
]


def sample_texts(sample: Sample) -> list[str]:
    """The text each output should match: its caption, else the instruction."""
    captions = sample.meta.get("captions")
    if isinstance(captions, list) and len(captions) == len(sample.outputs) and all(captions):
        return [str(c) for c in captions]
    text = " ".join(PLACEHOLDER.sub("the image", sample.instruction or "").split())
    return [text] * len(sample.outputs)


class CLIPScorer(Scorer):
    name = "clip"
    base_version = "1"

    def __init__(
        self,
        checkpoint: str | Path,
        model_name: str | None = None,
        *,
        batch_size: int = 32,
        text: bool = True,
        device: str = "cpu",
    ):
        super().__init__()
        self.checkpoint = Path(checkpoint)
        self.model_name = model_name
        self.batch_size = batch_size
        self.text = text
        self.device = device
        tiny = "+tiny-random" if self.checkpoint.is_dir() and is_tiny_random(self.checkpoint) else ""
        arch = f"+{model_name}" if model_name else ""
        self.version = f"{self.base_version}{arch}{tiny}"
        self.model = self.preprocess = self.tokenizer = None

    def load(self) -> None:
        import open_clip

        what = "CLIP (open_clip)"
        if self.checkpoint.is_dir():
            require_file(self.checkpoint / "open_clip_config.json", what)
            # open_clip itself only warns and keeps random weights when the checkpoint is missing.
            require_any(self.checkpoint, CHECKPOINT_NAMES, what)
            name = f"local-dir:{self.checkpoint}"
            model, _, preprocess = open_clip.create_model_and_transforms(name, device=self.device)
            tokenizer = open_clip.get_tokenizer(name)
        else:
            require_file(self.checkpoint, what, "pass the checkpoint file or an open_clip local-dir folder")
            if not self.model_name:
                raise MissingWeights(f"{what}: a single checkpoint file needs model_name= (e.g. 'ViT-B-32')")
            model, _, preprocess = open_clip.create_model_and_transforms(
                self.model_name, pretrained=str(self.checkpoint), device=self.device
            )
            tokenizer = open_clip.get_tokenizer(self.model_name)
        self.model, self.preprocess, self.tokenizer = model.eval(), preprocess, tokenizer

    # ----------------------------------------------------------------------- embeddings
    def embed_images(self, images: list[np.ndarray]) -> np.ndarray:
        import torch
        from PIL import Image

        self.setup()
        out = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            x = torch.stack([self.preprocess(Image.fromarray(to_rgb(im))) for im in chunk]).to(self.device)
            with torch.inference_mode():
                out.append(torch.nn.functional.normalize(self.model.encode_image(x).float(), dim=-1).cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        self.setup()
        out = []
        for start in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(texts[start : start + self.batch_size]).to(self.device)
            with torch.inference_mode():
                out.append(torch.nn.functional.normalize(self.model.encode_text(tokens).float(), dim=-1).cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)

    # ----------------------------------------------------------------------- scoring
    def score_batch(self, samples: list[Sample]) -> list[ScoreResult]:
        # One forward pass over every image (and text) in the batch, then per-sample arithmetic.
        images, spans = [], []
        for s in samples:
            start = len(images)
            images += [p.pixels for p in s.inputs[:1]] + [p.pixels for p in s.outputs]
            spans.append((start, len(images), bool(s.inputs)))
        img = self.embed_images(images)
        texts = [t for s in samples for t in sample_texts(s)] if self.text else []
        txt = self.embed_texts(texts) if texts else None

        out: list[ScoreResult] = []
        t0 = 0
        for s, (a, b, has_ref) in zip(samples, spans):
            emb = img[a:b]
            outs = emb[1:] if has_ref else emb
            if len(outs) == 0:
                out.append(self.reject("no_images", "sample has no output images", s))
                continue
            if has_ref:
                sims = outs @ emb[0]
            else:
                sims = np.array([outs[i] @ outs[j] for i in range(len(outs)) for j in range(i + 1, len(outs))])
            scores: dict[str, float] = {}
            if len(sims):
                scores["clip_image"] = float(sims.mean())
                scores["clip_image_min"] = float(sims.min())
            if txt is not None:
                n = len(s.outputs)
                scores["clip_text"] = float(np.mean(np.sum(outs * txt[t0 : t0 + n], axis=1)))
                t0 += n
            out.append(scores)
        return out
