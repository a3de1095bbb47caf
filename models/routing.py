"""The routing loss (DreamO's routing constraint, AnyStory's router): supervise where a
reference attends.

For each (reference, instance) pair of a sample - tokens of an input image (the instance's
mask on that input, or the whole image) and that instance's mask on one output image - the
attention of the reference tokens over that output's tokens, averaged over heads and over
the reference tokens, is a distribution over the output's patch cells. It is pulled toward
the instance's mask at the patch grid (normalised to a distribution):

    L_route = mean over pairs and chosen blocks of  sum_cells (A - m / sum m) ** 2

DreamO regresses the raw query-key similarity onto the 0/1 mask; a distribution against a
distribution keeps the loss in [0, 2] whatever the sequence length, so one weight fits every
resolution. `mass` (the share of the attention that lands inside the mask, coverage-weighted)
is the number a reader checks: uniform attention gets the mask's area fraction.

    probe = AttentionProbe(targets, blocks=[0, 1])
    v = model(x, t, batch, text, probe=probe)
    loss, mass = probe.loss()
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from models.packing import Packed


def ramped_weight(weight: float, step: int, ramp_steps: int) -> float:
    """The routing weight `step` steps in, rising linearly from 0 over `ramp_steps` (0 = full from the
    start). Gated outputs need it: at full weight from step 0 the routing gradient is most of the
    clipped total and every gate shut before an edit was learnt (docs/training.md)."""
    return weight * min(1.0, (step + 1) / ramp_steps) if ramp_steps else weight


@dataclass
class RoutePair:
    """One reference -> instance pair of a sample, on the packed images' patch grids."""

    in_image: int  # index of the reference among the sample's inputs
    out_image: int  # index of the output image the instance appears in
    target: Tensor  # (gh, gw) float in [0, 1]: the instance's coverage of each output cell
    query: Tensor | None = None  # (gh', gw') coverage on the input; None = every token of the input


@dataclass
class RoutingTargets:
    query: Tensor  # (B, R, Li) weights over input tokens, each valid row sums to 1
    target: Tensor  # (B, R, Lo) coverage of each output token by the instance, in [0, 1]
    image: Tensor  # (B, R, Lo) bool: tokens of the output image the pair points into
    valid: Tensor  # (B, R) bool

    @property
    def pairs(self) -> int:
        return int(self.valid.sum())

    def to(self, device: torch.device | str) -> RoutingTargets:
        return RoutingTargets(self.query.to(device), self.target.to(device), self.image.to(device),
                              self.valid.to(device))

    def without(self, dropped: Tensor) -> RoutingTargets:
        """Pairs of samples whose references were dropped (B,) no longer count."""
        keep = ~dropped.to(self.valid.device, torch.bool)
        return RoutingTargets(self.query, self.target, self.image, self.valid & keep[:, None])


def routing_targets(pairs: list[list[RoutePair]], batch: Packed) -> RoutingTargets | None:
    """Per-sample pair lists -> token-level targets laid out like `batch`; None when no sample has a pair."""
    R = max((len(p) for p in pairs), default=0)
    if R == 0:
        return None
    B, Li, Lo = len(batch), batch.inputs.length, batch.outputs.length
    query, target = torch.zeros(B, R, Li), torch.zeros(B, R, Lo)
    image, valid = torch.zeros(B, R, Lo, dtype=torch.bool), torch.zeros(B, R, dtype=torch.bool)
    for b, sample in enumerate(pairs):
        in_at, out_at = batch.inputs.offsets(b), batch.outputs.offsets(b)
        for r, pair in enumerate(sample):
            gh, gw = batch.outputs.grids[b][pair.out_image]
            qh, qw = batch.inputs.grids[b][pair.in_image]
            if tuple(pair.target.shape) != (gh, gw):
                raise ValueError(f"sample {b}: target grid {tuple(pair.target.shape)} != output grid {(gh, gw)}")
            q = torch.ones(qh, qw) if pair.query is None else pair.query.float()
            if tuple(q.shape) != (qh, qw):
                raise ValueError(f"sample {b}: query grid {tuple(q.shape)} != input grid {(qh, qw)}")
            if float(pair.target.sum()) <= 0 or float(q.sum()) <= 0:
                continue  # an instance that vanished at this resolution routes nowhere
            o, i = out_at[pair.out_image], in_at[pair.in_image]
            target[b, r, o:o + gh * gw] = pair.target.flatten().float()
            image[b, r, o:o + gh * gw] = True
            query[b, r, i:i + qh * qw] = q.flatten() / q.sum()
            valid[b, r] = True
    return RoutingTargets(query, target, image, valid) if valid.any() else None


class AttentionProbe:
    """Passed to `UnifiedDiT.forward`: in each chosen block, records the attention of every
    pair's reference tokens over the output tokens (see the module docstring)."""

    def __init__(self, targets: RoutingTargets, blocks: list[int], *, grad: bool = True):
        self.targets, self.blocks, self.grad = targets, set(blocks), grad
        self.maps: list[Tensor] = []  # (B, R, Lo) per recorded block
        self._inputs = self._outputs = slice(0, 0)

    def bind(self, n_txt: int, n_in: int, n_out: int) -> None:
        """Where the input and output tokens sit in the joint [text; inputs; outputs] sequence."""
        self._inputs = slice(n_txt, n_txt + n_in)
        self._outputs = slice(n_txt + n_in, n_txt + n_in + n_out)

    def __call__(self, q: Tensor, k: Tensor, mask: Tensor | None) -> None:
        with torch.set_grad_enabled(self.grad and torch.is_grad_enabled()):
            qi = q[:, :, self._inputs].float()  # (B, H, Li, d)
            logits = qi @ k.float().transpose(-1, -2) / q.shape[-1] ** 0.5  # (B, H, Li, L)
            if mask is not None:
                logits = logits.masked_fill(~mask[:, None, None, :], float("-inf"))
            probs = logits.softmax(dim=-1)[..., self._outputs].mean(dim=1)  # (B, Li, Lo) heads averaged
            self.maps.append(torch.einsum("bri,bio->bro", self.targets.query.to(probs), probs))  # (B, R, Lo)

    def loss(self) -> tuple[Tensor, Tensor]:
        """(routing loss, attention mass inside the instance): scalars averaged over valid pairs and blocks."""
        t = self.targets
        valid = t.valid.float()  # (B, R)
        if not self.maps or valid.sum() == 0:
            zero = torch.zeros((), device=t.valid.device)
            return zero, zero
        goal = t.target / t.target.sum(-1, keepdim=True).clamp(min=1e-12)  # (B, R, Lo) a distribution
        losses, masses = [], []
        for a in self.maps:
            a = a * t.image  # only the output image the instance is in
            a = a / a.sum(-1, keepdim=True).clamp(min=1e-12)  # (B, R, Lo) a distribution over its cells
            losses.append((((a - goal) ** 2).sum(-1) * valid).sum() / valid.sum())
            masses.append(((a * t.target).sum(-1) * valid).sum() / valid.sum())
        return torch.stack(losses).mean(), torch.stack(masses).mean().detach()
