"""Rectified-flow training objective (the FLUX / SD3 convention).

    x_t = (1 - t) * x0 + t * noise,   t in [0, 1], t = 0 is data, t = 1 is pure noise
    target velocity v = dx_t/dt = noise - x0

The model predicts v for the output frames only; inputs stay clean and are not part of
the loss. Timesteps are logit-normal (SD3): most samples land at mid-range t, where the
velocity is hardest to predict, few at the nearly trivial ends. The sampler integrates
from t = 1 to t = 0 (`models/sampling.py`).

`training_loss` is a plain function so the Ray Train loop and the CPU benchmark share it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from models.text_encoder import TextEmbedding


@dataclass
class EditBatch:
    outputs: Tensor  # (B, M, C, H, W) clean targets in the model's image space
    text: TextEmbedding  # (B, Lt, Dt) tokens, mask, pooled
    inputs: Tensor | None = None  # (B, N, C, H, W) clean inputs; None when N = 0
    weight: Tensor | None = None  # (B,) per-sample loss weights (the record's `weight`; 1 = neutral)
    pixel_weight: Tensor | None = None  # (B, M, 1, H, W) per-position weights, e.g. up-weighting edited regions

    def __len__(self) -> int:
        return self.outputs.shape[0]


@dataclass
class FlowLoss:
    loss: Tensor  # scalar, differentiable
    per_sample: Tensor  # (B,) detached MSE before the per-sample weight, for per-task logging
    t: Tensor  # (B,) the timesteps used


def logit_normal_timesteps(n: int, generator: torch.Generator, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """t = sigmoid(mean + std * N(0, 1)): (n,) in (0, 1)."""
    return torch.sigmoid(mean + std * torch.randn(n, generator=generator, device=generator.device))


def interpolate(x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """x_t on the straight path from data (t = 0) to noise (t = 1); t (B,) broadcasts."""
    t = t.view(-1, *([1] * (x0.dim() - 1)))
    return (1.0 - t) * x0 + t * noise


def velocity_target(x0: Tensor, noise: Tensor) -> Tensor:
    return noise - x0


def training_loss(
    model: nn.Module,
    batch: EditBatch,
    *,
    generator: torch.Generator,
    text_dropout: float = 0.1,
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
) -> FlowLoss:
    """One rectified-flow loss evaluation; every random draw comes from `generator`.

    `text_dropout` replaces that fraction of instructions by the null embedding, which
    trains the unconditional branch classifier-free guidance needs at sampling time.
    """
    x0 = batch.outputs  # (B, M, C, H, W)
    B = x0.shape[0]
    device = x0.device
    t = logit_normal_timesteps(B, generator, logit_mean, logit_std).to(device)  # (B,)
    noise = torch.randn(x0.shape, generator=generator, device=generator.device).to(x0)  # (B, M, C, H, W)
    dropped = torch.rand(B, generator=generator, device=generator.device) < text_dropout  # (B,)
    text = batch.text.drop(dropped).to(device)
    pred = model(interpolate(x0, noise, t), t, batch.inputs, text)  # (B, M, C, H, W)
    err = (pred.float() - velocity_target(x0, noise).float()) ** 2  # (B, M, C, H, W)
    if batch.pixel_weight is not None:
        err = err * batch.pixel_weight.to(err)
    per_sample = err.flatten(1).mean(1)  # (B,)
    weight = torch.ones(B, device=device) if batch.weight is None else batch.weight.to(device).float()
    loss = (weight * per_sample).mean()
    return FlowLoss(loss=loss, per_sample=per_sample.detach(), t=t.detach())
