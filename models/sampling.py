"""Euler sampler with classifier-free guidance (plain functions, no scheduler class).

Integrates the rectified flow of `models/flow_matching.py` from t = 1 (noise) to t = 0
(data). Guidance keeps the image inputs in both branches and drops only the text, the
same null embedding the training-time text dropout used:
    v = v_null + cfg * (v_text - v_null)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from models.image_space import PixelSpace, VAESpace
from models.text_encoder import TextEmbedding, TextEncoder


def get_schedule(steps: int, shift: float = 1.0) -> list[float]:
    """steps + 1 times from 1 to 0. shift > 1 spends more steps near the noise end (SD3's
    resolution shift: large images keep their coarse layout longer under noise)."""
    if steps < 1:
        raise ValueError(f"need at least one step, got {steps}")
    ts = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    ts = shift * ts / (1.0 + (shift - 1.0) * ts)
    return [float(t) for t in ts]


@torch.no_grad()
def denoise(
    model: nn.Module,
    x: Tensor,
    inputs: Tensor | None,
    text: TextEmbedding,
    timesteps: list[float],
    cfg: float = 1.0,
) -> Tensor:
    """Euler steps from x at timesteps[0] to timesteps[-1]. x: (B, M, C, H, W)."""
    guided = cfg != 1.0
    if guided:  # one forward pass for both branches
        text = TextEmbedding.cat([text, text.null_like()])
        inputs = None if inputs is None else torch.cat((inputs, inputs))
    for t_curr, t_next in zip(timesteps[:-1], timesteps[1:]):
        x_in = torch.cat((x, x)) if guided else x  # (B or 2B, M, C, H, W)
        t = torch.full((x_in.shape[0],), t_curr, dtype=x.dtype, device=x.device)  # (B or 2B,)
        v = model(x_in, t, inputs, text)  # (B or 2B, M, C, H, W)
        if guided:
            v_text, v_null = v.chunk(2)
            v = v_null + cfg * (v_text - v_null)
        x = x + (t_next - t_curr) * v
    return x


def sample_batch(
    model: nn.Module,
    inputs: Tensor | None,
    text: TextEmbedding,
    *,
    n_outputs: int = 1,
    size: tuple[int, int] | None = None,
    steps: int = 28,
    cfg: float = 4.0,
    seed: int = 0,
    shift: float = 1.0,
) -> Tensor:
    """Outputs in the model's image space: (B, n_outputs, C, h, w).

    inputs: (B, N, C, h, w) in the image space, or None; `size` (h, w) is needed only
    without inputs. Noise comes from a generator seeded with `seed` alone, so the same call
    gives the same outputs.
    """
    c = model.config
    B = len(text)
    if inputs is not None and inputs.shape[1] > 0:
        h, w = inputs.shape[-2:]
    elif size is not None:
        h, w = size
        inputs = None
    else:
        raise ValueError("sampling without input images needs size=(h, w)")
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(B, n_outputs, c.in_channels, h, w, generator=generator).to(device)
    was_training = model.training
    model.eval()
    try:
        return denoise(model, noise, inputs, text.to(device), get_schedule(steps, shift), cfg)
    finally:
        model.train(was_training)


def sample(
    model: nn.Module,
    inputs: Sequence[np.ndarray],
    text: str | TextEmbedding,
    steps: int = 28,
    cfg: float = 4.0,
    seed: int = 0,
    *,
    n_outputs: int = 1,
    size: tuple[int, int] | None = None,
    text_encoder: TextEncoder | None = None,
    image_space: PixelSpace | VAESpace | None = None,
    shift: float = 1.0,
) -> list[np.ndarray]:
    """One sample: input images (uint8 HxWx3, all one size) + instruction -> n_outputs images.

    `size` is the output (H, W) in pixels when there are no inputs. Pass a loaded
    `text_encoder` when calling repeatedly (the default MiniLM loads in a few seconds).
    """
    space = image_space or PixelSpace()
    if isinstance(text, str):
        text = (text_encoder or TextEncoder()).encode([text])
    if text.dim != model.config.text_dim:
        raise ValueError(f"text features are {text.dim}-d but the model expects text_dim={model.config.text_dim}")
    shapes = {np.asarray(im).shape for im in inputs}
    if len(shapes) > 1:
        raise ValueError(f"input images must share one size, got {sorted(shapes)}")
    latents = space.encode(np.stack(inputs))[None] if len(inputs) else None  # (1, N, C, h, w)
    latent_size = None if size is None else (size[0] // space.downsample, size[1] // space.downsample)
    device = next(model.parameters()).device
    out = sample_batch(
        model,
        None if latents is None else latents.to(device),
        text,
        n_outputs=n_outputs,
        size=latent_size,
        steps=steps,
        cfg=cfg,
        seed=seed,
        shift=shift,
    )  # (1, M, C, h, w)
    return [im.numpy() for im in space.decode(out[0])]
