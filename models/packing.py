"""Native-resolution image sets as padded token sequences (the flux `prepare` / `unpack` split).

Every image of a sample keeps its own size: it is patchified on its own, and each of its
tokens gets a 3D RoPE position (frame time, row, column) on its own grid, rows and columns
counted from its top-left patch (iMontage). A batch holds samples with different numbers
and sizes of images, so each side (inputs, outputs) is padded to the longest sample and a
mask marks the real tokens; attention never looks at padding.

    batch = pack(inputs, outputs, patch=4)        # lists of (C, H, W) tensors per sample
    images = unpack(tokens, batch.outputs, patch=4)

`aligned` hands each output token the patches of every input at the same cell, when that
input frames the same view (same aspect ratio): resampled to the output's size if needed.
An input of another aspect ratio (an outpaint crop, a reference cut-out of another shape)
has no pixel-to-pixel correspondence, so its aligned channels stay zero; attention and the
shared RoPE grid carry it instead.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from models.rope import MARGINAL_GAP, frame_times, grid_positions

# Two frames show the same view when their aspect ratios differ by less than this (log ratio):
# rounding both sides to whole patches moves the aspect of the same view by a few percent.
SAME_VIEW_LOG_ASPECT = 0.05


@dataclass
class Side:
    """One side (inputs or outputs) of a batch of image sets, as padded patch tokens."""

    tokens: Tensor  # (B, L, P) patch vectors, zero at padding
    ids: Tensor  # (B, L, 3) RoPE position (t, h, w) of each token
    mask: Tensor  # (B, L) bool, True = a real token
    image: Tensor  # (B, L) long: index of the token's image within its sample's side, -1 = padding
    grids: list[list[tuple[int, int]]]  # (gh, gw) of each image of each sample

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def length(self) -> int:
        return self.tokens.shape[1]

    def to(self, device: torch.device | str) -> Side:
        return replace(self, tokens=self.tokens.to(device), ids=self.ids.to(device), mask=self.mask.to(device),
                       image=self.image.to(device))

    def offsets(self, b: int) -> list[int]:
        """Token offset of each image of sample b (images are laid out one after another)."""
        out, at = [], 0
        for gh, gw in self.grids[b]:
            out.append(at)
            at += gh * gw
        return out


@dataclass
class Packed:
    """What the model sees of a batch besides the noisy outputs and the text."""

    inputs: Side  # clean input images (L may be 0)
    outputs: Side  # output layout; `outputs.tokens` are the clean targets in training, never read by the model
    aligned: Tensor  # (B, Lo, max_inputs * P) input patches at each output cell, zero where none

    def __len__(self) -> int:
        return len(self.outputs)

    @property
    def patch_dim(self) -> int:
        return self.outputs.tokens.shape[-1]

    def anchor(self) -> Tensor:
        """(B, Lo, P) the first input's patches at each output cell: what a residual output starts from."""
        return self.aligned[..., : self.patch_dim]

    def to(self, device: torch.device | str) -> Packed:
        return Packed(self.inputs.to(device), self.outputs.to(device), self.aligned.to(device))

    def tile(self, n: int) -> Packed:
        """The batch repeated n times along the batch axis (one forward pass for several guidance branches)."""
        def side(s: Side) -> Side:
            return Side(s.tokens.repeat(n, 1, 1), s.ids.repeat(n, 1, 1), s.mask.repeat(n, 1), s.image.repeat(n, 1),
                        s.grids * n)

        return Packed(side(self.inputs), side(self.outputs), self.aligned.repeat(n, 1, 1))

    def drop_inputs(self, dropped: Tensor) -> Packed:
        """The same batch with every input image of the samples where `dropped` (B,) is True removed
        (masked out of attention, aligned channels zeroed): the image-unconditional branch."""
        keep = ~dropped.to(self.inputs.mask.device, torch.bool)
        inputs = replace(self.inputs, mask=self.inputs.mask & keep[:, None])
        return Packed(inputs, self.outputs, self.aligned * keep[:, None, None].to(self.aligned))


# --------------------------------------------------------------------------- pack / unpack
def patchify(image: Tensor, patch: int) -> Tensor:
    """(C, H, W) -> (H/p * W/p, C*p*p), row-major cells."""
    C, H, W = image.shape
    if H % patch or W % patch:
        raise ValueError(f"image {H}x{W} is not a multiple of the patch size {patch}")
    return rearrange(image, "C (h p) (w q) -> (h w) (C p q)", p=patch, q=patch)


def pack_side(images: list[list[Tensor]], patch: int, times: list[list[int]], channels: int) -> Side:
    """Per-sample lists of (C, H, W) images -> a padded Side; `times` gives each image's frame time."""
    B = len(images)
    P = channels * patch * patch
    per_sample = [[patchify(im, patch) for im in sample] for sample in images]
    lengths = [sum(t.shape[0] for t in tok) for tok in per_sample]
    L = max(lengths, default=0)
    tokens = torch.zeros(B, L, P)
    ids = torch.zeros(B, L, 3)
    mask = torch.zeros(B, L, dtype=torch.bool)
    image = torch.full((B, L), -1, dtype=torch.long)
    grids: list[list[tuple[int, int]]] = []
    for b, (sample, toks) in enumerate(zip(images, per_sample)):
        at, g = 0, []
        for k, (im, tok) in enumerate(zip(sample, toks)):
            gh, gw = im.shape[1] // patch, im.shape[2] // patch
            n = gh * gw
            tokens[b, at:at + n] = tok.to(tokens)
            ids[b, at:at + n] = grid_positions(times[b][k], gh, gw)
            mask[b, at:at + n] = True
            image[b, at:at + n] = k
            g.append((gh, gw))
            at += n
        grids.append(g)
    return Side(tokens, ids, mask, image, grids)


def unpack(tokens: Tensor, side: Side, patch: int) -> list[list[Tensor]]:
    """(B, L, P) tokens laid out as `side` -> per-sample lists of (C, H, W) images."""
    out = []
    for b, grids in enumerate(side.grids):
        images = []
        for at, (gh, gw) in zip(side.offsets(b), grids):
            images.append(rearrange(tokens[b, at:at + gh * gw], "(h w) (C p q) -> C (h p) (w q)",
                                    h=gh, w=gw, p=patch, q=patch))
        out.append(images)
    return out


def same_view(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Do two (H, W) sizes frame the same view (aspect ratios within SAME_VIEW_LOG_ASPECT)?"""
    return abs(torch.tensor((a[1] / a[0]) / (b[1] / b[0])).log().item()) < SAME_VIEW_LOG_ASPECT


def resample(image: Tensor, size: tuple[int, int]) -> Tensor:
    """(C, H, W) -> (C, *size): area average when shrinking, bilinear when enlarging."""
    if tuple(image.shape[1:]) == tuple(size):
        return image
    shrink = size[0] * size[1] < image.shape[1] * image.shape[2]
    mode = "area" if shrink else "bilinear"
    kw = {} if shrink else {"align_corners": False}
    return F.interpolate(image[None].float(), size=size, mode=mode, **kw)[0].to(image)


def align_inputs(inputs: list[list[Tensor]], outputs: Side, patch: int, max_inputs: int, channels: int) -> Tensor:
    """(B, Lo, max_inputs * P): for each output token, the patch of every same-view input at its cell."""
    P = channels * patch * patch
    B, Lo = len(outputs), outputs.length
    aligned = torch.zeros(B, Lo, max_inputs * P)
    for b, sample in enumerate(inputs):
        for at, (gh, gw) in zip(outputs.offsets(b), outputs.grids[b]):
            size = (gh * patch, gw * patch)
            for k, im in enumerate(sample[:max_inputs]):
                if same_view(tuple(im.shape[1:]), size):
                    aligned[b, at:at + gh * gw, k * P:(k + 1) * P] = patchify(resample(im, size), patch).to(aligned)
    return aligned


def pack(inputs: list[list[Tensor]], outputs: list[list[Tensor]], *, patch: int, max_inputs: int = 4,
         layout: str = "marginal", gap: int = MARGINAL_GAP) -> Packed:
    """Inputs and outputs of B samples (each a list of (C, H, W) tensors, any sizes) -> a Packed batch.

    Frame times follow `models/rope.py`: a sample's inputs first, then its outputs.
    """
    if len(inputs) != len(outputs):
        raise ValueError(f"{len(inputs)} input lists for {len(outputs)} output lists")
    if any(not outs for outs in outputs):
        raise ValueError("every sample needs at least one output image")
    if any(len(ins) > max_inputs for ins in inputs):
        raise ValueError(f"a sample has more than max_inputs={max_inputs} inputs")
    some = next(im for outs in outputs for im in outs)
    channels = some.shape[0]
    times = [frame_times(len(i), len(o), layout, gap) for i, o in zip(inputs, outputs)]
    ins = pack_side(inputs, patch, [t[:len(i)] for t, i in zip(times, inputs)], channels)
    outs = pack_side(outputs, patch, [t[len(i):] for t, i in zip(times, inputs)], channels)
    return Packed(ins, outs, align_inputs(inputs, outs, patch, max_inputs, channels))
