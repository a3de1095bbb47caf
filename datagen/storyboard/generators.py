"""Panel generators: a diffusers pipeline from a local folder, or an HTTP endpoint.

Both implement `generate(prompt, *, seed, width, height, references) -> HxWx3 uint8` and raise
`GenerationFailed(reason, detail)` for a failure of one request, which the storyboard turns
into a reject; configuration errors (missing weights) raise at `setup()`.

HTTP protocol (JSON over POST), kept minimal so any server can speak it:
    request  {"prompt": str, "negative_prompt": str, "seed": int, "width": int, "height": int,
              "references": [base64 PNG, ...]}
    response {"image": base64 PNG/JPEG} with Content-Type application/json, or the raw image bytes.
The answer is untrusted: it comes through `datagen.backends.http_client` (one total deadline,
a size cap, no redirects, no secret in any failure detail) and then the guarded `load_image`.
Keys go in headers, per origin, from the environment or a file (`http_client.credential_headers`),
never in the URL: `generator_kind` refuses user:password@, query strings and fragments, because
the spec is stored in the lineage record, the card and the logs.
"""

from __future__ import annotations

import base64
import inspect
import json
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from datagen.backends import http_client
from datagen.backends.urls import redact, refuse_credentials
from datagen.images import ImageRejected, encode_png, load_image, to_rgb
from datagen.rejection import Rejected
from datagen.weights import is_tiny_random, require_dir, require_file


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
    """Panels from an HTTP endpoint (protocol above).

    `timeout_s` is the total deadline of one request, from name lookup to the last byte;
    `max_bytes` caps the answer. `headers` (from code) add to the ones keyed to the URL's
    origin in `headers_file` / the environment (`http_client.credential_headers`); none of
    them is ever stored. `tag` names the backend by host and port only.
    """

    def __init__(self, url: str, *, timeout_s: float = 120.0, headers: dict[str, str] | None = None,
                 negative_prompt: str = "", max_bytes: int = http_client.DEFAULT_MAX_BYTES,
                 headers_file: str | Path | None = None):
        self.url = url
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.headers_file = headers_file
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.negative_prompt = negative_prompt
        self.reference_mode = "http"
        self.tag = f"http@1+{_host_port(url)}"
        self._credentials: dict[str, str] | None = None

    def __getstate__(self) -> dict:
        # Shipped to a worker (or spilled to disk by Ray): keys are read again there, not carried.
        return {**self.__dict__, "_credentials": None}

    def setup(self) -> None:
        if self._credentials is not None:
            return
        http_client.check_url(self.url, "HTTP generator URL")
        self._credentials = http_client.credential_headers(self.url, headers_file=self.headers_file)

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
        try:
            answer = http_client.post(self.url, json.dumps(body).encode(),
                                      headers={**self._credentials, **self.headers},
                                      deadline_s=self.timeout_s, max_bytes=self.max_bytes)
        except http_client.HTTPFailure as exc:
            raise GenerationFailed(f"generator_{exc.reason}", exc.detail) from None
        raw = answer.body
        if "json" in answer.content_type:
            try:
                raw = base64.b64decode(json.loads(raw)["image"], validate=True)
            except (ValueError, KeyError, TypeError) as exc:
                why = f"JSON without a base64 'image' ({type(exc).__name__})"  # never the body: it may echo keys
                raise GenerationFailed("generator_bad_response", why) from None
        try:
            return load_image(raw, keep_alpha=False).pixels
        except ImageRejected as exc:
            raise GenerationFailed(exc.reason, f"generator answer: {exc.detail}") from exc


def _host_port(url: str) -> str:
    """host[:port] of `url`, nothing else of it (no user:password@, no query)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        return f"{host}:{parts.port}" if parts.port is not None else host
    except ValueError:
        return "invalid-url"


def generator_kind(spec: str) -> str:
    """"http" or "diffusers" for a `--generator` spec; ValueError for anything else (no I/O).

    The spec is stored (config, lineage, card, sample sources), so an http(s) spec with
    user:password@, a ?query or a #fragment is refused; the error shows it redacted."""
    if spec.startswith(("http://", "https://")):
        refuse_credentials(spec, "--generator", query=True, where=http_client.CREDENTIALS_HELP)
        return "http"
    if spec.startswith("diffusers:") and len(spec) > len("diffusers:"):
        return "diffusers"
    raise ValueError(f"--generator {redact(spec)!r}: use diffusers:/path/to/pipeline or an http(s):// endpoint")


def make_generator(spec: str) -> DiffusersGenerator | HTTPGenerator:
    if generator_kind(spec) == "http":
        return HTTPGenerator(spec)
    return DiffusersGenerator(spec[len("diffusers:"):])
