"""Attention with rotary position embeddings (the flux `math.py` split).

Everything positional lives here so the blocks in `layers.py` never see an index: a block
gets a ready `pe` tensor of rotation matrices and hands it to `attention`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor


def attention(q: Tensor, k: Tensor, v: Tensor, pe: Tensor, mask: Tensor | None = None, probe=None) -> Tensor:
    """Rotary-embedded scaled dot-product attention.

    q, k, v: (B, H, L, D); pe: (1|B, 1, L, D/2, 2, 2); mask: (B, L) bool, True = key may be
    attended (padding keys are False). `probe(q, k, mask)`, when given, sees the rotated
    queries and keys (the routing loss reads attention maps through it, `models/routing.py`).
    Returns (B, L, H*D).
    """
    q, k = apply_rope(q, k, pe)
    if probe is not None:
        probe(q, k, mask)
    attn_mask = None if mask is None else mask[:, None, None, :]  # (B, 1, 1, L) broadcast over heads, queries
    x = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    return rearrange(x, "B H L D -> B L (H D)")


def rope(pos: Tensor, dim: int, theta: float) -> Tensor:
    """2x2 rotation matrices for one position axis: pos (..., L) -> (..., L, dim/2, 2, 2)."""
    if dim % 2:
        raise ValueError(f"a RoPE axis needs an even number of channels, got {dim}")
    # float64: positions reach ~100 on the temporal axis and float32 angles lose the
    # low-frequency phase that tells nearby frames apart.
    scale = torch.arange(0, dim, 2, dtype=torch.float64, device=pos.device) / dim
    omega = 1.0 / (theta**scale)
    angles = torch.einsum("...n,d->...nd", pos.to(torch.float64), omega)
    out = torch.stack([angles.cos(), -angles.sin(), angles.sin(), angles.cos()], dim=-1)
    return rearrange(out, "... n d (i j) -> ... n d i j", i=2, j=2).float()


def apply_rope(xq: Tensor, xk: Tensor, freqs: Tensor) -> tuple[Tensor, Tensor]:
    """Rotate consecutive channel pairs of q and k by the angles in `freqs`."""
    xq_ = xq.float().reshape(*xq.shape[:-1], -1, 1, 2)
    xk_ = xk.float().reshape(*xk.shape[:-1], -1, 1, 2)
    xq_out = freqs[..., 0] * xq_[..., 0] + freqs[..., 1] * xq_[..., 1]
    xk_out = freqs[..., 0] * xk_[..., 0] + freqs[..., 1] * xk_[..., 1]
    return xq_out.reshape(*xq.shape).type_as(xq), xk_out.reshape(*xk.shape).type_as(xk)


def embed_positions(ids: Tensor, axes_dim: tuple[int, ...], theta: float) -> Tensor:
    """Multi-axis RoPE: ids (..., L, n_axes) -> (..., 1, L, sum(axes_dim)/2, 2, 2).

    Each axis owns its own slice of the head channels, so (t, h, w) rotate independently
    and attention scores depend only on the per-axis offsets between two tokens.
    """
    if ids.shape[-1] != len(axes_dim):
        raise ValueError(f"ids have {ids.shape[-1]} axes but axes_dim has {len(axes_dim)}")
    emb = torch.cat([rope(ids[..., i], axes_dim[i], theta) for i in range(len(axes_dim))], dim=-3)
    return emb.unsqueeze(-5)  # head axis
