"""3D RoPE index layout: every image of a sample is a pseudo-frame of a video.

Each image token gets a position (t, h, w): `t` says which image it belongs to, (h, w) is
its patch cell. Two rules carry the design (iMontage):

- Input and output images are frames at *different* times but the *same* spatial grid,
  so the output token at (h, w) and the input token at (h, w) differ only on the t axis.
  Their attention score then depends on content alone plus one fixed temporal offset,
  which makes "copy the untouched pixel from the input" an easy pattern to learn.
- "marginal" (default) puts inputs at the start of the time axis and outputs after a
  wide gap, so the model always knows which side a frame is on, whatever N and M are
  (iMontage's layout for many-to-many with a video prior). "uniform" numbers all frames
  consecutively, as a plain video would.

Text tokens sit at (0, 0, 0) (flux's convention): they carry no geometry, so their
rotation is the identity and text-image scores depend on content only.
"""

from __future__ import annotations

import torch
from torch import Tensor

LAYOUTS = ("marginal", "uniform")
# Outputs start this many frames after the first input in the marginal layout; wider than
# any supported input count so no input ever shares a time index with an output.
MARGINAL_GAP = 16


def frame_times(n_in: int, n_out: int, layout: str = "marginal", gap: int = MARGINAL_GAP) -> list[int]:
    """Temporal index of each frame: the n_in inputs first, then the n_out outputs."""
    if layout == "marginal":
        if n_in > gap:
            raise ValueError(f"marginal layout with gap {gap} holds at most {gap} inputs, got {n_in}")
        return list(range(n_in)) + [gap + j for j in range(n_out)]
    if layout == "uniform":
        return list(range(n_in + n_out))
    raise ValueError(f"unknown RoPE layout {layout!r}; choose one of {LAYOUTS}")


def image_positions(
    n_in: int, n_out: int, grid_h: int, grid_w: int, layout: str = "marginal", gap: int = MARGINAL_GAP
) -> Tensor:
    """(t, h, w) of every image token, frames in order inputs then outputs, each row-major.

    Returns a float tensor of shape ((n_in + n_out) * grid_h * grid_w, 3).
    """
    times = torch.tensor(frame_times(n_in, n_out, layout, gap), dtype=torch.float32)  # (F,)
    hh, ww = torch.meshgrid(torch.arange(grid_h), torch.arange(grid_w), indexing="ij")  # (gh, gw) each
    spatial = torch.stack([hh.flatten(), ww.flatten()], dim=-1).float()  # (gh*gw, 2)
    n_frames, n_cells = len(times), spatial.shape[0]
    t = times.repeat_interleave(n_cells)[:, None]  # (F*gh*gw, 1)
    return torch.cat([t, spatial.repeat(n_frames, 1)], dim=-1)  # (F*gh*gw, 3)


def text_positions(n_txt: int) -> Tensor:
    """Text tokens all at the origin: (n_txt, 3) zeros."""
    return torch.zeros(n_txt, 3)
