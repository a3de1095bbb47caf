"""Rectified-flow training objective (the FLUX / SD3 convention).

    x_t = (1 - t) * x0 + t * noise,   t in [0, 1], t = 0 is data, t = 1 is pure noise
    target velocity v = dx_t/dt = noise - x0

The model predicts v for the output tokens only (padding excluded); inputs stay clean and
are not part of the loss. Timesteps are logit-normal (SD3): most samples land at mid-range t, where the
velocity is hardest to predict, few at the nearly trivial ends. The sampler integrates
from t = 1 to t = 0 (`models/sampling.py`).

`training_loss` is a plain function so the Ray Train loop and the CPU benchmark share it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from models.packing import Packed
from models.routing import AttentionProbe, RoutingTargets
from models.text_encoder import TextEmbedding


@dataclass
class EditBatch:
    batch: Packed  # inputs and output layout; `batch.outputs.tokens` are the clean targets x0 (B, Lo, P)
    text: TextEmbedding  # (B, Lt, Dt) tokens, mask, pooled
    weight: Tensor | None = None  # (B,) per-sample loss weights (the record's `weight`; 1 = neutral)
    pixel_weight: Tensor | None = None  # (B, Lo, 1 or P) per-position weights, e.g. up-weighting edited regions
    routing: RoutingTargets | None = None  # reference -> instance pairs for the routing loss

    def __len__(self) -> int:
        return len(self.batch)


@dataclass
class FlowLoss:
    loss: Tensor  # scalar, differentiable: flow loss + routing_weight * routing loss
    per_sample: Tensor  # (B,) detached MSE before the per-sample weight, for per-task logging
    t: Tensor  # (B,) the timesteps used
    routing: Tensor | None = None  # detached routing loss (None: no pair in the batch)
    routing_mass: Tensor | None = None  # detached attention mass inside the instances


LOSS_SPACES = ("velocity", "clean")


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
    ref_dropout: float = 0.0,
    routing_weight: float = 0.0,
    routing_blocks: tuple[int, ...] | list[int] = (),
    denominator: float | None = None,
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
    loss_space: str = "velocity",
) -> FlowLoss:
    """One rectified-flow loss evaluation; every random draw comes from `generator`.

    `text_dropout` replaces that fraction of instructions by the null embedding and
    `ref_dropout` removes that fraction of samples' input images (drawn independently, so
    some samples lose both): the unconditional branches classifier-free guidance needs at
    sampling time, for text and for images. With `routing_blocks`, the routing loss
    (`models/routing.py`) is computed on the batch's pairs, logged, and added with
    `routing_weight`. `denominator` divides the weighted sum of per-sample losses (default:
    the batch size; a Ray Train rank with part of a global batch passes its share of it).
    `loss_space="clean"` scores the clean-output estimate instead of the velocity: the same
    error times t^2 (x0_hat - x0 = t (v - v_hat)), so samples near t = 0, where copying x_t is
    the whole answer, no longer dominate the gradient.
    """
    if loss_space not in LOSS_SPACES:
        raise ValueError(f"loss_space {loss_space!r} is not one of {LOSS_SPACES}")
    x0 = batch.batch.outputs.tokens  # (B, Lo, P)
    out_mask = batch.batch.outputs.mask.to(x0.device)  # (B, Lo)
    B = x0.shape[0]
    device = x0.device
    t = logit_normal_timesteps(B, generator, logit_mean, logit_std).to(device)  # (B,)
    noise = torch.randn(x0.shape, generator=generator, device=generator.device).to(x0)  # (B, Lo, P)
    no_text = torch.rand(B, generator=generator, device=generator.device) < text_dropout  # (B,)
    no_refs = torch.rand(B, generator=generator, device=generator.device) < ref_dropout  # (B,)
    text = batch.text.drop(no_text).to(device)
    packed = batch.batch.drop_inputs(no_refs) if bool(no_refs.any()) else batch.batch
    probe = None
    if batch.routing is not None and routing_blocks:
        probe = AttentionProbe(batch.routing.without(no_refs).to(device), list(routing_blocks),
                               grad=routing_weight > 0)
    pred = model(interpolate(x0, noise, t), t, packed, text, probe=probe)  # (B, Lo, P)
    err = (pred.float() - velocity_target(x0, noise).float()) ** 2  # (B, Lo, P)
    if loss_space == "clean":
        err = err * (t.float() ** 2).view(B, 1, 1)
    if batch.pixel_weight is not None:
        err = err * batch.pixel_weight.to(err)
    valid = out_mask[..., None].to(err)  # (B, Lo, 1)
    per_sample = (err * valid).flatten(1).sum(1) / (valid.flatten(1).sum(1) * err.shape[-1]).clamp(min=1)  # (B,)
    weight = torch.ones(B, device=device) if batch.weight is None else batch.weight.to(device).float()
    loss = (weight * per_sample).sum() / (B if denominator is None else denominator)
    routing = mass = None
    if probe is not None and probe.targets.pairs:
        routing, mass = probe.loss()
        if routing_weight > 0:
            loss = loss + routing_weight * routing
        routing = routing.detach()
    return FlowLoss(loss=loss, per_sample=per_sample.detach(), t=t.detach(), routing=routing, routing_mass=mass)
