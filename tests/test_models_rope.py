"""3D RoPE: index layouts and the relative-position property the copy path relies on."""

from __future__ import annotations

import pytest
import torch

from models.math import apply_rope, attention, embed_positions, rope
from models.rope import MARGINAL_GAP, frame_times, image_positions, text_positions


def test_marginal_layout_puts_inputs_first_and_outputs_after_a_gap():
    assert frame_times(3, 2, "marginal") == [0, 1, 2, MARGINAL_GAP, MARGINAL_GAP + 1]
    assert frame_times(0, 4, "marginal") == [MARGINAL_GAP + j for j in range(4)]
    # The first output's time does not move with the number of inputs.
    assert {frame_times(n, 1, "marginal")[-1] for n in range(5)} == {MARGINAL_GAP}


def test_uniform_layout_numbers_frames_consecutively():
    assert frame_times(3, 2, "uniform") == [0, 1, 2, 3, 4]
    assert frame_times(0, 1, "uniform") == [0]


def test_unknown_layout_and_too_many_inputs_are_errors():
    with pytest.raises(ValueError, match="unknown RoPE layout"):
        frame_times(1, 1, "diagonal")
    with pytest.raises(ValueError, match="at most 4 inputs"):
        frame_times(5, 1, "marginal", gap=4)


@pytest.mark.parametrize("layout", ["marginal", "uniform"])
def test_image_positions_share_spatial_cells_across_frames(layout):
    n_in, n_out, gh, gw = 2, 3, 3, 4
    pos = image_positions(n_in, n_out, gh, gw, layout)
    assert pos.shape == ((n_in + n_out) * gh * gw, 3)
    frames = pos.view(n_in + n_out, gh * gw, 3)
    times = frame_times(n_in, n_out, layout)
    for f in range(n_in + n_out):
        assert torch.all(frames[f, :, 0] == times[f])  # one time per frame
        assert torch.equal(frames[f, :, 1:], frames[0, :, 1:])  # same (h, w) grid in every frame
    # Row-major cells: token k of a frame sits at (k // gw, k % gw).
    k = torch.arange(gh * gw)
    assert torch.equal(frames[0, :, 1], (k // gw).float())
    assert torch.equal(frames[0, :, 2], (k % gw).float())


def test_text_sits_at_the_origin():
    assert torch.equal(text_positions(5), torch.zeros(5, 3))


def test_rope_score_depends_only_on_position_offset():
    """q.k after rotation is a function of (p_q - p_k) per axis: shift both, same score."""
    torch.manual_seed(0)
    axes = (4, 6, 6)
    q, k = torch.randn(1, 1, 2, 16), torch.randn(1, 1, 2, 16)
    pos = torch.tensor([[16.0, 2.0, 3.0], [0.0, 2.0, 3.0]])  # an output token and the input token below it

    def score(p):
        pe = embed_positions(p[None], axes, 10_000.0)
        qr, kr = apply_rope(q, k, pe)
        return (qr[0, 0, 0] * kr[0, 0, 1]).sum()

    shifted = pos + torch.tensor([5.0, 7.0, -1.0])
    assert torch.allclose(score(pos), score(shifted), atol=1e-4)
    moved = pos.clone()
    moved[0, 1] += 1  # break the spatial alignment: the score changes
    assert not torch.allclose(score(pos), score(moved), atol=1e-3)


def test_rope_rotation_preserves_norm_and_identity_at_zero():
    x = torch.randn(2, 3, 5, 8)
    pe = embed_positions(torch.zeros(1, 5, 3), (2, 2, 4), 10_000.0)
    xr, _ = apply_rope(x, x, pe)
    assert torch.allclose(xr, x)  # position 0 rotates by 0
    pe = embed_positions(torch.rand(1, 5, 3) * 50, (2, 2, 4), 10_000.0)
    xr, _ = apply_rope(x, x, pe)
    assert torch.allclose(xr.norm(dim=-1), x.norm(dim=-1), atol=1e-5)


def test_rope_rejects_odd_axis_and_attention_masks_keys():
    with pytest.raises(ValueError, match="even"):
        rope(torch.zeros(3), 3, 10_000.0)
    q = k = v = torch.randn(1, 1, 3, 4)
    v = torch.stack([torch.zeros(4), torch.zeros(4), torch.full((4,), 100.0)])[None, None]
    pe = embed_positions(torch.zeros(1, 3, 3), (2, 0, 2), 10_000.0)
    out = attention(q, k, v, pe, mask=torch.tensor([[True, True, False]]))
    assert out.shape == (1, 3, 4)
    assert out.abs().max() == 0  # the masked key's value never leaks
