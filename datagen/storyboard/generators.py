"""Panel generators: a diffusers pipeline from a local folder, or an HTTP endpoint.

Both implement `generate(prompt, *, seed, width, height, references) -> HxWx3 uint8` and raise
`GenerationFailed(reason, detail)` for a failure of one request, which the storyboard turns
into a reject; configuration errors (missing weights) raise at `setup()`.

HTTP protocol (JSON over POST), kept minimal so any server can speak it:
    request  {"prompt": str, "negative_prompt": str, "seed": int, "width": int, "height": int,
              "references": [base64 PNG, ...]}
    response {"image": base64 PNG/JPEG} with Content-Type application/json, or the raw image bytes.
The answer is untrusted and goes through the guarded `load_image`.
"""

from __future__ import annotations

import base64
import inspect
import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from datagen.images import ImageRejected, encode_png, load_image, to_rgb
from datagen.rejection import Rejected
from datagen.scoring.tiny_models import is_tiny_random
from datagen.scoring.weights import require_dir, require_file


class GenerationFailed(Rejected, RuntimeError):
    """A generator backend that gave no usable image."""


class DiffusersGenerator:
    """Any text-to-image (or image-conditioned) diffusers pipeline saved with `save_pretrained`.

    References reach the pipeline only if its `__call__` takes them: `ip_adapter_image` (an
    IP-Adapter is loaded) or `image` (img2img-style pipelines, with `strength`). Otherwise the
    panel is generated from the prompt alone and `reference_mode` says so ("none"), so a
    dataset card can tell subject-conditioned panels from text-only ones.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        steps: int = 25,
        guidance_scale: float = 5.0,
        negative_prompt: str = "blurry, deformed, text, watermark",
        strength: float = 0.8,
        device: str = "cpu",
        dtype: str = "float32",
    ):
        self.model_dir = Path(model_dir)
        self.steps = steps
        self.guidance_scale = guidance_scale
        self.negative_prompt = negative_prompt
        self.strength = strength
        self.device = device
        self.dtype = dtype
        self.pipe = None
        self.reference_mode = "none"
        tiny = "+tiny-random" if _tiny_pipeline(self.model_dir) else ""
        self.tag = f"diffusers@1+{self.model_dir.name}{tiny}"

    def setup(self) -> None:
        if self.pipe is not None:
            return
        require_dir(self.model_dir, "diffusers pipeline")
        require_file(self.model_dir / "model_index.json", "diffusers pipeline", "save the pipeline with save_pretrained()")
        import torch
        from diffusers import DiffusionPipeline

        self.pipe = DiffusionPipeline.from_pretrained(
            self.model_dir, local_files_only=True, dtype=getattr(torch, self.dtype)
        ).to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        params = inspect.signature(self.pipe.__call__).parameters
        if "ip_adapter_image" in params and getattr(self.pipe, "image_encoder", None) is not None:
            self.reference_mode = "ip_adapter"
        elif "image" in params and "strength" in params:
            self.reference_mode = "img2img"

    def generate(self, prompt: str, *, seed: int, width: int, height: int, references: list[np.ndarray]) -> np.ndarray:
        import torch
        from PIL import Image

        self.setup()
        kwargs = {
            "prompt": prompt,
            "negative_prompt": self.negative_prompt,
            "num_inference_steps": self.steps,
            "guidance_scale": self.guidance_scale,
            "generator": torch.Generator("cpu").manual_seed(int(seed)),
            "output_type": "np",
        }
        ref = Image.fromarray(to_rgb(references[0])).resize((width, height)) if references else None
        if ref is not None and self.reference_mode == "ip_adapter":
            kwargs["ip_adapter_image"] = ref
        elif ref is not None and self.reference_mode == "img2img":
            kwargs.update(image=ref, strength=self.strength)
        if self.reference_mode != "img2img" or ref is None:
            kwargs.update(width=width, height=height)
        try:
            out = self.pipe(**kwargs).images[0]
        except (RuntimeError, ValueError) as exc:
            raise GenerationFailed("generator_error", f"{type(exc).__name__}: {exc}") from exc
        arr = np.asarray(out, np.float32)
        if not np.all(np.isfinite(arr)):
            raise GenerationFailed("generator_nan", "pipeline returned non-finite pixels")
        return np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _tiny_pipeline(folder: Path) -> bool:
    return is_tiny_random(folder)


class HTTPGenerator:
    def __init__(self, url: str, *, timeout_s: float = 120.0, headers: dict[str, str] | None = None, negative_prompt: str = ""):
        self.url = url
        self.timeout_s = timeout_s
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.negative_prompt = negative_prompt
        self.reference_mode = "http"
        self.tag = f"http@1+{url.split('://')[-1].split('/')[0]}"

    def setup(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"HTTP generator URL must start with http:// or https://, got {self.url!r}")

    def generate(self, prompt: str, *, seed: int, width: int, height: int, references: list[np.ndarray]) -> np.ndarray:
        self.setup()
        body = {
            "prompt": prompt,
            "negative_prompt": self.negative_prompt,
            "seed": int(seed),
            "width": int(width),
            "height": int(height),
            "references": [base64.b64encode(encode_png(to_rgb(r))).decode("ascii") for r in references],
        }
        req = urllib.request.Request(self.url, json.dumps(body).encode(), self.headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                ctype = resp.headers.get("Content-Type", "")
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise GenerationFailed("generator_http_error", f"HTTP {exc.code}: {exc.read()[:300]!r}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise GenerationFailed("generator_unreachable", f"{type(exc).__name__}: {exc}") from exc
        if "json" in ctype:
            try:
                raw = base64.b64decode(json.loads(raw)["image"], validate=True)
            except (ValueError, KeyError, TypeError) as exc:
                raise GenerationFailed("generator_bad_response", f"JSON without a base64 'image': {exc}") from exc
        try:
            return load_image(raw, keep_alpha=False).pixels
        except ImageRejected as exc:
            raise GenerationFailed(exc.reason, f"generator answer: {exc.detail}") from exc


def generator_kind(spec: str) -> str:
    """"http" or "diffusers" for a `--generator` spec; ValueError for anything else (no I/O)."""
    if spec.startswith(("http://", "https://")):
        return "http"
    if spec.startswith("diffusers:") and len(spec) > len("diffusers:"):
        return "diffusers"
    raise ValueError(f"--generator {spec!r}: use diffusers:/path/to/pipeline or an http(s):// endpoint")


def make_generator(spec: str) -> DiffusersGenerator | HTTPGenerator:
    if generator_kind(spec) == "http":
        return HTTPGenerator(spec)
    return DiffusersGenerator(spec[len("diffusers:"):])
