"""UnifiedDiT: native-size image sets as packed tokens, attention wiring, adaLN-Zero init,
output parametrisations."""

from __future__ import annotations

import pytest
import torch

from models.dit import PRESETS, DiTConfig, UnifiedDiT
from models.packing import pack, unpack
from models.text_encoder import TextEmbedding

P = 2  # patch size of the small config

pytestmark = pytest.mark.usefixtures("torch_one_thread")  # tiny models on a shared 2-core machine


def small_config(**kw) -> DiTConfig:
    base = dict(hidden_size=32, num_heads=2, depth_double=1, depth_single=2, axes_dim=(4, 6, 6), text_dim=16,
                patch_size=P)
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


def images(*sizes: tuple[int, int], seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(3, h, w, generator=g) for h, w in sizes]


def run(model, inputs, outputs, txt, t=None, x=None, **kw):
    """Forward on lists of images; returns (velocity tokens, packed batch, noisy tokens)."""
    batch = pack(inputs, outputs, patch=model.config.patch_size, max_inputs=model.config.max_inputs, **kw)
    x = torch.randn(batch.outputs.tokens.shape) if x is None else x
    t = torch.rand(len(inputs)) if t is None else t
    return model(x, t, batch, txt), batch, x


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
    c = small_config(rope_layout="uniform", prediction="residual")
    assert DiTConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown DiTConfig keys"):
        DiTConfig.from_dict({**c.to_dict(), "hiden_size": 3})


@pytest.mark.parametrize("n_in", [0, 1, 4])
@pytest.mark.parametrize("n_out", [1, 3])
def test_every_count_and_size_in_one_batch_and_attention_stays_within_a_sample(n_in, n_out):
    """Sample 0 has n_in inputs / n_out outputs of assorted sizes; sample 1 is a different shape
    altogether. Every output attends to every input of its own sample, never to the other's."""
    torch.manual_seed(n_in * 10 + n_out)
    model = randomize(UnifiedDiT(small_config()), seed=n_out).eval()
    sizes_in = [(8, 6), (4, 8), (6, 6), (8, 8)][:n_in]
    sizes_out = [(6, 8), (8, 4), (4, 4)][:n_out]
    ins = [[im.requires_grad_() for im in images(*sizes_in, seed=1)], [images((8, 8), seed=2)[0].requires_grad_()]]
    outs = [images(*sizes_out, seed=3), images((4, 10), seed=4)]
    v, batch, _ = run(model, ins, outs, text(2))
    assert v.shape == batch.outputs.tokens.shape and torch.isfinite(v).all()
    per_image = unpack(v, batch.outputs, P)
    assert [tuple(im.shape[1:]) for im in per_image[0]] == sizes_out
    assert (v[1][~batch.outputs.mask[1]] == 0).all()  # padding is zero
    for j in range(n_out):
        grads = torch.autograd.grad(per_image[0][j].sum(), ins[0] + ins[1], retain_graph=True, allow_unused=True)
        assert all(g is not None and g.abs().sum() > 0 for g in grads[:n_in])
        assert grads[n_in] is None or grads[n_in].abs().sum() == 0  # sample 1's input: untouched


def test_a_sample_does_not_depend_on_what_else_is_in_its_batch():
    """Padding is invisible: a sample alone and beside a longer one give the same velocity."""
    model = randomize(UnifiedDiT(small_config())).eval()
    ins, outs, txt = [images((8, 8), seed=1)], [images((8, 8), seed=2)], text(1)
    x = torch.randn(1, 16, 12)
    t = torch.tensor([0.3])
    alone, _, _ = run(model, ins, outs, txt, t=t, x=x)
    big_ins, big_outs = ins + [images((8, 12), (8, 8), seed=3)], outs + [images((12, 8), (4, 4), seed=4)]
    both_txt = TextEmbedding.cat([txt, text(1, length=7)])
    big = pack(big_ins, big_outs, patch=P)
    xb = torch.randn(big.outputs.tokens.shape)
    xb[0, :16] = x[0]
    together = model(xb, torch.tensor([0.3, 0.7]), big, both_txt)
    torch.testing.assert_close(together[0, :16], alone[0], atol=1e-5, rtol=1e-5)


def test_outputs_attend_to_each_other():
    model = randomize(UnifiedDiT(small_config())).eval()
    outs = [images((4, 4), (4, 6), (6, 4), seed=1)]
    batch = pack([[]], outs, patch=P)
    x = torch.randn(batch.outputs.tokens.shape, requires_grad=True)
    v = model(x, torch.rand(1), batch, text(1))
    first = unpack(v, batch.outputs, P)[0][0]
    grad = torch.autograd.grad(first.sum(), x)[0]
    assert grad[0, 4:].abs().sum() > 0  # tokens of the other two outputs


def test_padded_text_is_invisible():
    model = randomize(UnifiedDiT(small_config())).eval()
    batch = pack([images((4, 4), seed=1), images((4, 4), seed=2)], [images((4, 4), seed=3), images((4, 4), seed=4)],
                 patch=P)
    x, t = torch.randn(batch.outputs.tokens.shape), torch.rand(2)
    cond = text(2, length=6, valid=[3, 6])
    noisy = TextEmbedding(cond.tokens.clone(), cond.mask, cond.pooled)
    noisy.tokens[0, 3:] = 50.0  # garbage behind the mask of sample 0
    torch.testing.assert_close(model(x, t, batch, cond), model(x, t, batch, noisy))


def test_null_text_and_dropped_inputs_change_the_output():
    model = randomize(UnifiedDiT(small_config())).eval()
    batch = pack([images((4, 4), seed=1)], [images((4, 4), seed=2)], patch=P)
    x, t, cond = torch.randn(batch.outputs.tokens.shape), torch.rand(1), text(1)
    with_text = model(x, t, batch, cond)
    without = model(x, t, batch, cond.null_like())
    assert torch.isfinite(without).all() and (with_text - without).abs().max() > 1e-3
    no_refs = batch.drop_inputs(torch.tensor([True]))
    assert not no_refs.inputs.mask.any() and not no_refs.aligned.any()
    blind = model(x, t, no_refs, cond)
    assert (with_text - blind).abs().max() > 1e-3
    # Dropping the inputs is the same as never having had them.
    empty = pack([[]], [images((4, 4), seed=2)], patch=P)
    torch.testing.assert_close(blind, model(x, t, empty, cond), atol=1e-5, rtol=1e-5)


def test_input_order_matters_in_both_layouts():
    """Each input is its own frame: swapping two inputs is a different request."""
    for layout in ("marginal", "uniform"):
        model = randomize(UnifiedDiT(small_config(rope_layout=layout, long_skips=False, align_inputs=False))).eval()
        a, b = images((4, 4), (4, 4), seed=5)
        x, t, cond = torch.randn(1, 4, 12), torch.rand(1), text(1)
        ab = model(x, t, pack([[a, b]], [images((4, 4))], patch=P, layout=layout), cond)
        ba = model(x, t, pack([[b, a]], [images((4, 4))], patch=P, layout=layout), cond)
        assert (ab - ba).abs().max() > 1e-4


def test_adaln_zero_init_gives_zero_output_and_identity_blocks():
    model = UnifiedDiT(small_config())
    v, _, _ = run(model, [images((4, 4))], [images((4, 4), (4, 6))], text(1))
    assert torch.count_nonzero(v) == 0
    for block in model.single_blocks:
        assert torch.count_nonzero(block.modulation.lin.weight) == 0
    # Zero output but not a dead network: the loss still has a gradient at the output layer.
    v, _, _ = run(model, [[]], [images((4, 4))], text(1))
    (v - 1).pow(2).mean().backward()
    assert model.final_layer.linear.bias.grad.abs().sum() > 0


def test_long_skips_pair_shallow_and_deep_blocks():
    with_skips = UnifiedDiT(small_config(depth_double=2, depth_single=3))
    assert len(with_skips.skips) == 2  # 5 blocks: 0->4, 1->3, the middle one unpaired
    assert len(UnifiedDiT(small_config(long_skips=False)).skips) == 0
    # A skip starts as pass-through of the deep path: [I | 0].
    w = with_skips.skips[0].linear.weight
    assert torch.equal(w[:, :32], torch.eye(32)) and torch.count_nonzero(w[:, 32:]) == 0
    v, _, _ = run(randomize(with_skips), [images((4, 4), (4, 4))], [images((4, 4))], text(1))
    assert v.shape == (1, 4, 12)


def test_bad_shapes_are_refused_before_work():
    model = UnifiedDiT(small_config())
    with pytest.raises(ValueError, match="patch"):
        pack([[]], [images((5, 4))], patch=P)
    with pytest.raises(ValueError, match="outside"):
        run(model, [[]], [images(*[(4, 4)] * 5)], text(1))
    batch = pack([[]], [images((4, 4))], patch=P)
    with pytest.raises(ValueError, match="do not match"):
        model(torch.randn(1, 4, 7), torch.rand(1), batch, text(1))


def test_aligned_inputs_feed_each_output_cell_its_same_view_input_cells():
    model = randomize(UnifiedDiT(small_config(depth_double=1, depth_single=1)))
    with torch.no_grad():
        model.img_in.weight.zero_()
        model.img_in.bias.zero_()
        model.frame_role.zero_()
    seen = {}
    model.double_blocks[0].register_forward_pre_hook(lambda m, a, kw: seen.update(img=kw["img"]), with_kwargs=True)
    gh, gw = 2, 3
    inputs = [torch.randn(3, 2 * gh, 2 * gw), torch.randn(3, 2 * gh, 2 * gw)]
    outs = [torch.zeros(3, 2 * gh, 2 * gw), torch.zeros(3, 2 * gh, 2 * gw)]
    run(model, [inputs], [outs], text(1), x=torch.zeros(1, 12, 12))
    before = seen["img"].clone()
    inputs[1][:, 2:4, 4:6] += 1.0  # input 2, cell (1, 2)
    run(model, [inputs], [outs], text(1), x=torch.zeros(1, 12, 12))
    changed = (seen["img"] - before).abs().sum(-1)[0].view(4, gh * gw) > 0  # (frames, cells)
    assert not changed[:2].any()  # input tokens hold only their own embedding (zeroed here)
    assert changed[2:, 1 * gw + 2].all() and changed[2:].sum() == 2  # that cell of every output
    # Another view (aspect ratio) has no cell-to-cell correspondence: nothing aligned; the same
    # view at half the size is resampled to the output's grid.
    crop = pack([[torch.ones(3, 2, 6)]], [[torch.zeros(3, 4, 6)]], patch=P)
    assert not crop.aligned.any()
    half = pack([[torch.ones(3, 2, 4)]], [[torch.zeros(3, 4, 8)]], patch=P)
    assert torch.allclose(half.aligned[0, :, :12], torch.ones(8, 12))
    off = UnifiedDiT(small_config(align_inputs=False))
    assert off.aligned_in is None
    assert torch.count_nonzero(UnifiedDiT(small_config()).aligned_in.weight) == 0  # starts closed


def test_image_and_residual_predictions_return_the_velocity_towards_their_image():
    model = UnifiedDiT(small_config(prediction="image"))
    src = images((4, 4), seed=1)
    batch = pack([src] * 3, [images((4, 4))] * 3, patch=P)
    x, t = torch.randn(3, 4, 12), torch.tensor([0.5, 1.0, 0.01])
    v = model(x, t, batch, text(3))
    # Zero init predicts the image 0, so v = (x_t - 0) / t, with t clipped at 0.05.
    torch.testing.assert_close(v, x / torch.tensor([0.5, 1.0, 0.05]).view(3, 1, 1))
    # Residual: zero init predicts the input itself; one Euler step from t to 0 lands on it.
    residual = UnifiedDiT(small_config(prediction="residual"))
    v = residual(x, t, batch, text(3))
    anchor = batch.anchor()
    torch.testing.assert_close(v, (x - anchor) / torch.tensor([0.5, 1.0, 0.05]).view(3, 1, 1))
    torch.testing.assert_close((x - 0.5 * v)[0], anchor[0])


def test_gated_prediction_multiplies_each_pixel_residual_by_its_own_gate():
    model = UnifiedDiT(small_config(prediction="gated"))
    c = model.config
    assert model.final_layer.linear.out_features == c.patch_dim + c.patch_size**2
    src = images((4, 4), seed=1)
    batch = pack([src] * 2, [images((4, 4))] * 2, patch=P)
    x, t = torch.randn(2, 4, 12), torch.tensor([0.5, 0.25])
    # Zero init: values 0, so the model starts as "copy the input" like the residual one.
    torch.testing.assert_close(model(x, t, batch, text(2)), (x - batch.anchor()) / t.view(2, 1, 1))
    # Values 1 everywhere; gate logits +inf on pixel 0 of each patch, -inf elsewhere: only that
    # pixel's three channels (positions 0, p*p, 2*p*p of the (C p q) patch) move, by 1.
    with torch.no_grad():
        model.final_layer.linear.bias[: c.patch_dim] = 1.0
        model.final_layer.linear.bias[c.patch_dim:] = -1e4
        model.final_layer.linear.bias[c.patch_dim] = 1e4
    x0 = x - t.view(2, 1, 1) * model(x, t, batch, text(2))
    moved = torch.zeros(c.patch_dim)
    moved[[0, c.patch_size**2, 2 * c.patch_size**2]] = 1.0
    torch.testing.assert_close(x0 - batch.anchor(), moved.expand_as(x0), atol=1e-5, rtol=0)
