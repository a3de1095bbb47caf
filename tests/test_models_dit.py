"""UnifiedDiT: shapes for every input/output count, attention wiring, adaLN-Zero init."""

from __future__ import annotations

import pytest
import torch

from models.dit import PRESETS, DiTConfig, UnifiedDiT
from models.text_encoder import TextEmbedding


def small_config(**kw) -> DiTConfig:
    base = dict(hidden_size=32, num_heads=2, depth_double=1, depth_single=2, axes_dim=(4, 6, 6), text_dim=16)
    return DiTConfig(**{**base, **kw})


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-zero weights everywhere (the zero init would make every output 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model


def text(batch: int, length: int = 5, dim: int = 16, valid: list[int] | None = None) -> TextEmbedding:
    valid = valid or [length] * batch
    mask = torch.arange(length)[None] < torch.tensor(valid)[:, None]
    return TextEmbedding(torch.randn(batch, length, dim) * mask[..., None], mask, torch.randn(batch, dim))


def test_presets_build_and_grow():
    sizes = {name: UnifiedDiT(make()).num_params() for name, make in PRESETS.items() if name != "base"}
    assert 3e6 < sizes["tiny"] < 8e6
    assert sizes["small"] > 5 * sizes["tiny"]
    assert PRESETS["base"]().hidden_size == 768  # built only as a config: 300M params is slow to init here
    assert PRESETS["tiny"]().patch_size == 4 and PRESETS["tiny"](patch_size=2).patch_size == 2  # overrides win


def test_configs_saved_before_align_inputs_load_without_it():
    old = {k: v for k, v in PRESETS["tiny"]().to_dict().items() if k != "align_inputs"}
    assert DiTConfig.from_dict(old).align_inputs is False
    assert DiTConfig.from_dict(PRESETS["tiny"]().to_dict()).align_inputs is True


def test_config_validation_and_round_trip():
    with pytest.raises(ValueError, match="divisible"):
        small_config(num_heads=5)
    with pytest.raises(ValueError, match="axes_dim"):
        small_config(axes_dim=(4, 4, 4))
    with pytest.raises(ValueError, match="rope_layout"):
        small_config(rope_layout="spiral")
    c = small_config(rope_layout="uniform")
    assert DiTConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown DiTConfig keys"):
        DiTConfig.from_dict({**c.to_dict(), "hiden_size": 3})


@pytest.mark.parametrize("n_in", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("n_out", [1, 2, 3, 4])
def test_shapes_and_attention_for_every_count(n_in, n_out):
    torch.manual_seed(n_in * 10 + n_out)
    model = randomize(UnifiedDiT(small_config()), seed=n_out).eval()
    B, H, W = 2, 8, 6
    x = torch.randn(B, n_out, 3, H, W)
    inputs = torch.randn(B, n_in, 3, H, W, requires_grad=True) if n_in else None
    out = model(x, torch.rand(B), inputs, text(B))
    assert out.shape == (B, n_out, 3, H, W)
    assert torch.isfinite(out).all()
    if n_in:
        # Every output frame attends to every input frame, and samples never mix.
        for j in range(n_out):
            grad = torch.autograd.grad(out[0, j].sum(), inputs, retain_graph=True)[0]
            assert all(grad[0, k].abs().sum() > 0 for k in range(n_in))
            assert grad[1].abs().sum() == 0


def test_outputs_attend_to_each_other():
    model = randomize(UnifiedDiT(small_config())).eval()
    x = torch.randn(1, 3, 3, 4, 4, requires_grad=True)
    out = model(x, torch.rand(1), None, text(1))
    grad = torch.autograd.grad(out[0, 0].sum(), x)[0]
    assert grad[0, 1].abs().sum() > 0 and grad[0, 2].abs().sum() > 0


def test_padded_text_is_invisible():
    model = randomize(UnifiedDiT(small_config())).eval()
    x, t, inputs = torch.randn(2, 1, 3, 4, 4), torch.rand(2), torch.randn(2, 1, 3, 4, 4)
    cond = text(2, length=6, valid=[3, 6])
    noisy = TextEmbedding(cond.tokens.clone(), cond.mask, cond.pooled)
    noisy.tokens[0, 3:] = 50.0  # garbage behind the mask of sample 0
    torch.testing.assert_close(model(x, t, inputs, cond), model(x, t, inputs, noisy))
    # The same text without padding gives the same result as the padded one.
    short = TextEmbedding(cond.tokens[:1, :3], cond.mask[:1, :3], cond.pooled[:1])
    torch.testing.assert_close(model(x[:1], t[:1], inputs[:1], short), model(x, t, inputs, cond)[:1], atol=1e-5, rtol=1e-5)


def test_null_text_is_finite_and_text_matters():
    model = randomize(UnifiedDiT(small_config())).eval()
    x, t, inputs = torch.randn(1, 1, 3, 4, 4), torch.rand(1), torch.randn(1, 1, 3, 4, 4)
    cond = text(1)
    with_text = model(x, t, inputs, cond)
    without = model(x, t, inputs, cond.null_like())
    assert torch.isfinite(without).all()
    assert (with_text - without).abs().max() > 1e-3


def test_input_order_matters_in_both_layouts():
    """Each input is its own frame: swapping two inputs is a different request."""
    for layout in ("marginal", "uniform"):
        model = randomize(UnifiedDiT(small_config(rope_layout=layout, long_skips=False))).eval()
        x, t, cond = torch.randn(1, 1, 3, 4, 4), torch.rand(1), text(1)
        a, b = torch.randn(1, 1, 3, 4, 4), torch.randn(1, 1, 3, 4, 4)
        ab = model(x, t, torch.cat((a, b), 1), cond)
        ba = model(x, t, torch.cat((b, a), 1), cond)
        assert (ab - ba).abs().max() > 1e-4


def test_adaln_zero_init_gives_zero_output_and_identity_blocks():
    model = UnifiedDiT(small_config())
    out = model(torch.randn(2, 2, 3, 4, 4), torch.rand(2), torch.randn(2, 1, 3, 4, 4), text(2))
    assert torch.count_nonzero(out) == 0
    for block in model.single_blocks:
        assert torch.count_nonzero(block.modulation.lin.weight) == 0
    # Zero output but not a dead network: the loss still has a gradient at the output layer.
    out = model(torch.randn(1, 1, 3, 4, 4), torch.rand(1), None, text(1))
    (out - 1).pow(2).mean().backward()
    assert model.final_layer.linear.bias.grad.abs().sum() > 0


def test_long_skips_pair_shallow_and_deep_blocks():
    with_skips = UnifiedDiT(small_config(depth_double=2, depth_single=3))
    assert len(with_skips.skips) == 2  # 5 blocks: 0->4, 1->3, the middle one unpaired
    assert len(UnifiedDiT(small_config(long_skips=False)).skips) == 0
    # A skip starts as pass-through of the deep path: [I | 0].
    w = with_skips.skips[0].linear.weight
    assert torch.equal(w[:, :32], torch.eye(32)) and torch.count_nonzero(w[:, 32:]) == 0
    out = randomize(with_skips)(torch.randn(1, 1, 3, 4, 4), torch.rand(1), torch.randn(1, 2, 3, 4, 4), text(1))
    assert out.shape == (1, 1, 3, 4, 4)


def test_bad_shapes_are_refused_before_work():
    model = UnifiedDiT(small_config())
    with pytest.raises(ValueError, match="patch"):
        model(torch.randn(1, 1, 3, 5, 4), torch.rand(1), None, text(1))
    with pytest.raises(ValueError, match="outside"):
        model(torch.randn(1, 5, 3, 4, 4), torch.rand(1), None, text(1))
    with pytest.raises(ValueError, match="share"):
        model(torch.randn(1, 1, 3, 4, 4), torch.rand(1), torch.randn(1, 1, 3, 8, 8), text(1))


def test_aligned_input_path_feeds_each_output_cell_its_own_input_cells():
    model = randomize(UnifiedDiT(small_config(depth_double=1, depth_single=1)))
    with torch.no_grad():
        model.img_in.weight.zero_()
        model.img_in.bias.zero_()
        model.frame_role.zero_()
    seen = {}
    model.double_blocks[0].register_forward_pre_hook(lambda m, a, kw: seen.update(img=kw["img"]), with_kwargs=True)
    n_in, n_out, gh, gw = 2, 2, 2, 3
    inputs = torch.randn(1, n_in, 3, 2 * gh, 2 * gw)
    model(torch.randn(1, n_out, 3, 2 * gh, 2 * gw), torch.rand(1), inputs, text(1))
    before = seen["img"].clone()
    inputs[0, 1, :, 2:4, 4:6] += 1.0  # input 2, cell (1, 2)
    model(torch.randn(1, n_out, 3, 2 * gh, 2 * gw), torch.rand(1), inputs, text(1))
    changed = (seen["img"] - before).abs().sum(-1)[0].view(n_in + n_out, gh * gw) > 0  # (frames, cells)
    assert not changed[:n_in].any()  # input tokens hold only their own embedding (zeroed here)
    assert changed[n_in:, 1 * gw + 2].all() and changed[n_in:].sum() == n_out  # that cell of every output
    off = UnifiedDiT(small_config(align_inputs=False))
    assert off.aligned_in is None
    assert torch.count_nonzero(UnifiedDiT(small_config()).aligned_in.weight) == 0  # starts closed


def test_image_prediction_returns_the_velocity_towards_its_image():
    with pytest.raises(ValueError, match="prediction"):
        small_config(prediction="noise")
    model = UnifiedDiT(small_config(prediction="image"))
    x, t = torch.randn(3, 1, 3, 4, 4), torch.tensor([0.5, 1.0, 0.01])
    out = model(x, t, torch.randn(3, 1, 3, 4, 4), text(3))
    # Zero init predicts the image 0, so v = (x_t - 0) / t, with t clipped at 0.05.
    torch.testing.assert_close(out, x / torch.tensor([0.5, 1.0, 0.05]).view(3, 1, 1, 1, 1))
