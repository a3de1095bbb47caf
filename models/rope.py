"""3D RoPE index layout: every image of a sample is a pseudo-frame of a video.

Each image token gets a position (t, h, w): `t` says which image it belongs to, (h, w) is
its patch cell. Two rules carry the design (iMontage):

- Input and output images are frames at *different* times on spatial grids that all start
  at the top-left patch, so the output token at (h, w) and the input token at (h, w) differ
  only on the t axis. Their attention score then depends on content alone plus one fixed
  temporal offset, which makes "copy the untouched pixel from the input" an easy pattern to
  learn. Each image keeps its own size and so its own grid (gh, gw): an outpaint input that
  is the top 60% of the canvas covers the top 60% of the output's rows, cell for cell.
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


def grid_positions(time: int, grid_h: int, grid_w: int) -> Tensor:
    """(grid_h * grid_w, 3) positions (t, h, w) of one image's tokens, row-major."""
    hh, ww = torch.meshgrid(torch.arange(grid_h), torch.arange(grid_w), indexing="ij")  # (gh, gw) each
    t = torch.full((grid_h * grid_w,), float(time))
    return torch.stack((t, hh.flatten().float(), ww.flatten().float()), dim=-1)


def image_positions(
    n_in: int, n_out: int, grid_h: int, grid_w: int, layout: str = "marginal", gap: int = MARGINAL_GAP
) -> Tensor:
    """(t, h, w) of every token of n_in + n_out frames of one size, inputs then outputs, each row-major.

    Returns a float tensor of shape ((n_in + n_out) * grid_h * grid_w, 3).
    """
    times = frame_times(n_in, n_out, layout, gap)
    return torch.cat([grid_positions(t, grid_h, grid_w) for t in times])  # (F*gh*gw, 3)


def text_positions(n_txt: int) -> Tensor:
    """Text tokens all at the origin: (n_txt, 3) zeros."""
    return torch.zeros(n_txt, 3)
