"""Where the DiT works: raw pixels (the CPU default) or a diffusers VAE's latents.

Both spaces map uint8 images (..., H, W, 3) to float tensors (..., C, h, w) and back, so
the trainer and the sampler never care which one they hold. Patchify is the DiT's job.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from models.text_encoder import check_hf_folder

VAE_WEIGHT_FILES = ("diffusion_pytorch_model.safetensors",)
VAE_CLASSES = ("AutoencoderKL", "AutoencoderTiny")


def to_unit(images: Tensor | np.ndarray) -> Tensor:
    """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [-1, 1]."""
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, Tensor) else images)
    if x.dtype != torch.uint8 or x.shape[-1] != 3:
        raise ValueError(f"want uint8 (..., H, W, 3) images, got {x.dtype} {tuple(x.shape)}")
    return x.movedim(-1, -3).float() / 127.5 - 1.0


def from_unit(x: Tensor) -> Tensor:
    """float (..., 3, H, W) in [-1, 1] -> uint8 (..., H, W, 3), rounded and clipped."""
    return ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).movedim(-3, -1).cpu()


class PixelSpace:
    """Identity space: the DiT patchifies pixels scaled to [-1, 1]."""

    channels = 3
    downsample = 1

    def encode(self, images: Tensor | np.ndarray) -> Tensor:
        return to_unit(images)

    def decode(self, x: Tensor) -> Tensor:
        return from_unit(x)


class VAESpace:
    """A diffusers AutoencoderKL or AutoencoderTiny (TAESD) loaded from a local folder.

    Latents are normalised as the pipelines do ((z - shift) * scale), so the flow sees
    roughly unit-variance data whatever the VAE. Encoding uses the posterior mode: a data
    set's latents are then a pure function of its pixels.
    """

    def __init__(self, path: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        import diffusers

        self.path = Path(path)
        config = check_hf_folder(self.path, VAE_WEIGHT_FILES, tokenizer=False)
        name = config.get("_class_name", "")
        if name not in VAE_CLASSES:
            raise ValueError(f"{self.path}/config.json names {name!r}; supported VAEs: {', '.join(VAE_CLASSES)}")
        self.kind = name
        self.device, self.dtype = torch.device(device), dtype
        self.vae = getattr(diffusers, name).from_pretrained(self.path, use_safetensors=True).to(self.device, dtype).eval()
        self.vae.requires_grad_(False)
        cfg = self.vae.config
        self.channels = int(cfg.latent_channels)
        if name == "AutoencoderKL":
            self.downsample = 2 ** (len(cfg.block_out_channels) - 1)
        else:
            self.downsample = int(cfg.upsampling_scaling_factor) ** (len(cfg.encoder_block_out_channels) - 1)
        self.scale = float(cfg.scaling_factor)
        self.shift = float(getattr(cfg, "shift_factor", None) or 0.0)

    @torch.no_grad()
    def encode(self, images: Tensor | np.ndarray) -> Tensor:
        x = to_unit(images)
        lead, (c, h, w) = x.shape[:-3], x.shape[-3:]
        if h % self.downsample or w % self.downsample:
            raise ValueError(f"image {h}x{w} is not a multiple of the VAE's factor {self.downsample}")
        flat = x.reshape(-1, c, h, w).to(self.device, self.dtype)
        if self.kind == "AutoencoderKL":
            z = self.vae.encode(flat).latent_dist.mode()
        else:
            z = self.vae.encode(flat).latents
        z = (z.float() - self.shift) * self.scale
        return z.reshape(*lead, *z.shape[-3:]).cpu()

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        lead = z.shape[:-3]
        flat = z.reshape(-1, *z.shape[-3:]).float() / self.scale + self.shift
        x = self.vae.decode(flat.to(self.device, self.dtype)).sample.float()
        return from_unit(x.reshape(*lead, *x.shape[-3:]))


def load_image_space(path: str | Path | None = None, **kw) -> PixelSpace | VAESpace:
    """None or "pixels" -> PixelSpace; a folder -> the VAE its config.json names."""
    if path is None or str(path) == "pixels":
        return PixelSpace()
    return VAESpace(path, **kw)
