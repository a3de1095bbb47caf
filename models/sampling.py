"""Euler sampler with classifier-free guidance (plain functions, no scheduler class).

Integrates the rectified flow of `models/flow_matching.py` from t = 1 (noise) to t = 0
(data). Guidance has a text scale and an image scale (see `denoise`); the unconditional
branches use what training dropped: the null text embedding and no input images.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from models.image_space import PixelSpace, VAESpace
from models.packing import Packed, pack, unpack
from models.text_encoder import TextEmbedding, TextEncoder


def get_schedule(steps: int, shift: float = 1.0) -> list[float]:
    """steps + 1 times from 1 to 0. shift > 1 spends more steps near the noise end (SD3's
    resolution shift: large images keep their coarse layout longer under noise)."""
    if steps < 1:
        raise ValueError(f"need at least one step, got {steps}")
    ts = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    ts = shift * ts / (1.0 + (shift - 1.0) * ts)
    return [float(t) for t in ts]


def guidance_branches(cfg: float, image_cfg: float, has_inputs: bool) -> tuple[bool, bool]:
    """Which extra branches the guidance formula needs: (image-only, unconditional)."""
    image_cfg = image_cfg if has_inputs else 1.0  # without inputs the two branches coincide
    return cfg != 1.0 or image_cfg != 1.0, image_cfg != 1.0


@torch.no_grad()
def denoise(
    model: nn.Module,
    x: Tensor,
    batch: Packed,
    text: TextEmbedding,
    timesteps: list[float],
    cfg: float = 1.0,
    image_cfg: float = 1.0,
) -> Tensor:
    """Euler steps from x at timesteps[0] to timesteps[-1]. x: (B, Lo, P) noisy output tokens.

    Guidance with separate text and image scales (InstructPix2Pix's form):
        v = v_none + image_cfg * (v_image - v_none) + cfg * (v_full - v_image)
    v_full sees text and inputs, v_image the inputs only, v_none neither. image_cfg = 1 is
    plain text guidance with the inputs kept in both branches.
    """
    B = x.shape[0]
    with_image, with_none = guidance_branches(cfg, image_cfg, bool(batch.inputs.mask.any()))
    n = 1 + with_image + with_none
    texts, dropped = [text], [torch.zeros(B, dtype=torch.bool)]
    if with_image:
        texts.append(text.null_like())
        dropped.append(torch.zeros(B, dtype=torch.bool))
    if with_none:
        texts.append(text.null_like())
        dropped.append(torch.ones(B, dtype=torch.bool))
    joint = batch.tile(n).drop_inputs(torch.cat(dropped)) if n > 1 else batch
    joint_text = TextEmbedding.cat(texts) if n > 1 else text
    for t_curr, t_next in zip(timesteps[:-1], timesteps[1:]):
        x_in = x.repeat(n, 1, 1)  # (n*B, Lo, P)
        t = torch.full((x_in.shape[0],), t_curr, dtype=x.dtype, device=x.device)  # (n*B,)
        v = model(x_in, t, joint, joint_text).chunk(n)  # n x (B, Lo, P)
        v_full = v[0]
        if n == 1:
            guided = v_full
        else:
            v_image = v[1]
            v_none = v[2] if with_none else v_image
            guided = v_none + (image_cfg if with_none else 1.0) * (v_image - v_none) + cfg * (v_full - v_image)
        x = x + (t_next - t_curr) * guided
    return x


def sample_batch(
    model: nn.Module,
    batch: Packed,
    text: TextEmbedding,
    *,
    steps: int = 28,
    cfg: float = 4.0,
    image_cfg: float = 1.0,
    seed: int = 0,
    shift: float = 1.0,
) -> Tensor:
    """Output tokens in the model's image space, laid out as `batch.outputs`: (B, Lo, P).

    The outputs' sizes come from `batch.outputs` (its tokens are ignored). Noise comes from
    a generator seeded with `seed` alone, so the same call gives the same outputs.
    """
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(batch.outputs.tokens.shape, generator=generator).to(device)  # (B, Lo, P)
    was_training = model.training
    model.eval()
    try:
        out = denoise(model, noise, batch.to(device), text.to(device), get_schedule(steps, shift), cfg, image_cfg)
        return out * batch.outputs.mask[..., None].to(out)
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
    image_cfg: float = 1.0,
    n_outputs: int = 1,
    size: tuple[int, int] | None = None,
    text_encoder: TextEncoder | None = None,
    image_space: PixelSpace | VAESpace | None = None,
    shift: float = 1.0,
) -> list[np.ndarray]:
    """One sample: input images (uint8 HxWx3, each at its own size) + instruction -> n_outputs images.

    `size` is the outputs' (H, W) in pixels; by default the first input's size (an edit
    keeps its canvas), required without inputs. Sides must be multiples of the patch size
    times the image space's downsampling. Pass a loaded `text_encoder` when calling
    repeatedly (the default MiniLM loads in a few seconds).
    """
    space = image_space or PixelSpace()
    c = model.config
    if isinstance(text, str):
        text = (text_encoder or TextEncoder()).encode([text])
    if text.dim != c.text_dim:
        raise ValueError(f"text features are {text.dim}-d but the model expects text_dim={c.text_dim}")
    if size is None:
        if not len(inputs):
            raise ValueError("sampling without input images needs size=(h, w)")
        size = tuple(np.asarray(inputs[0]).shape[:2])
    unit = c.patch_size * space.downsample
    for im in [*inputs, np.zeros((*size, 3))]:
        h, w = np.asarray(im).shape[:2]
        if h % unit or w % unit:
            raise ValueError(f"image {h}x{w} is not a multiple of {unit} (patch {c.patch_size} x image space "
                             f"downsampling {space.downsample}); fit it first (training.sizes.fit_image)")
    latents = [space.encode(np.asarray(im)) for im in inputs]  # (C, h, w) each
    out_size = (size[0] // space.downsample, size[1] // space.downsample)
    blank = [torch.zeros(c.in_channels, *out_size) for _ in range(n_outputs)]
    batch = pack([latents], [blank], patch=c.patch_size, max_inputs=c.max_inputs, layout=c.rope_layout,
                 gap=c.rope_gap)
    tokens = sample_batch(model, batch, text, steps=steps, cfg=cfg, image_cfg=image_cfg, seed=seed, shift=shift)
    images = unpack(tokens.cpu(), batch.outputs, c.patch_size)[0]
    return [space.decode(im).numpy() for im in images]
