"""Rectified-flow objective and the Euler/CFG sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from models.dit import DiTConfig, UnifiedDiT
from models.flow_matching import (
    EditBatch,
    interpolate,
    logit_normal_timesteps,
    training_loss,
    velocity_target,
)
from models.packing import pack, unpack
from models.sampling import denoise, get_schedule, sample, sample_batch
from models.text_encoder import TextEmbedding

P = 2

pytestmark = pytest.mark.usefixtures("torch_one_thread")  # tiny models on a shared 2-core machine


def small_model(seed: int = 0, **kw) -> UnifiedDiT:
    torch.manual_seed(seed)
    base = dict(hidden_size=32, num_heads=2, depth_double=1, depth_single=2, axes_dim=(4, 6, 6), text_dim=16,
                patch_size=P)
    return UnifiedDiT(DiTConfig(**{**base, **kw}))


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model


def make_batch(B: int = 4, n_in: int = 1, n_out: int = 2, seed: int = 0, size: int = 8) -> EditBatch:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(B, 5, dtype=torch.bool)
    mask[0, 3:] = False
    text = TextEmbedding(torch.randn(B, 5, 16, generator=g) * mask[..., None], mask, torch.randn(B, 16, generator=g))
    ims = lambda n: [[torch.randn(3, size, size, generator=g).clamp(-1, 1) for _ in range(n)] for _ in range(B)]  # noqa: E731
    return EditBatch(batch=pack(ims(n_in), ims(n_out), patch=P), text=text)


# --------------------------------------------------------------------------- objective
def test_path_endpoints_and_velocity_is_its_derivative():
    x0, noise = torch.randn(3, 1, 3, 4, 4), torch.randn(3, 1, 3, 4, 4)
    torch.testing.assert_close(interpolate(x0, noise, torch.zeros(3)), x0)
    torch.testing.assert_close(interpolate(x0, noise, torch.ones(3)), noise)
    t, h = torch.full((3,), 0.3), 1e-3
    slope = (interpolate(x0, noise, t + h) - interpolate(x0, noise, t)) / h
    torch.testing.assert_close(slope, velocity_target(x0, noise), atol=1e-3, rtol=1e-3)


def test_logit_normal_timesteps_are_seeded_and_centred():
    a = logit_normal_timesteps(4000, torch.Generator().manual_seed(1))
    b = logit_normal_timesteps(4000, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert 0 < a.min() and a.max() < 1
    assert abs(a.median().item() - 0.5) < 0.03
    # Logit-normal puts less mass at the ends than uniform does.
    assert ((a < 0.1) | (a > 0.9)).float().mean() < 0.2
    shifted = logit_normal_timesteps(4000, torch.Generator().manual_seed(1), mean=1.0)
    assert shifted.median() > 0.7


def test_same_seed_gives_the_same_loss_curve():
    def curve(seed: int) -> list[float]:
        model = small_model(seed=0)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        g = torch.Generator().manual_seed(seed)
        losses = []
        for step in range(4):
            loss = training_loss(model, make_batch(seed=step), generator=g).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses

    first = curve(7)
    assert first == curve(7)
    assert first != curve(8)


def test_loss_reaches_output_tokens_only():
    """The gradient of the loss w.r.t. the last block's activations is zero at every text and
    input-image position and non-zero at the output positions."""
    model = randomize(small_model())
    batch = make_batch(B=2, n_in=2, n_out=1)
    captured = {}

    def keep(_module, _args, output):
        output.retain_grad()
        captured["out"] = output

    model.single_blocks[-1].register_forward_hook(keep)
    training_loss(model, batch, generator=torch.Generator().manual_seed(0), text_dropout=0.0).loss.backward()
    grad = captured["out"].grad  # (B, Lt + Li + Lo, D)
    n_txt, cells = batch.text.tokens.shape[1], (8 // P) * (8 // P)
    assert grad[:, : n_txt + 2 * cells].abs().max() == 0
    assert (grad[:, n_txt + 2 * cells :].abs().sum(-1) > 0).all()


def test_sample_and_pixel_weights():
    model = randomize(small_model())
    batch = make_batch(B=3, n_out=1)
    plain = training_loss(model, batch, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(plain.loss, plain.per_sample.mean())
    batch.weight = torch.tensor([1.0, 0.0, 2.0])
    weighted = training_loss(model, batch, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(weighted.per_sample, plain.per_sample)
    torch.testing.assert_close(weighted.loss, (plain.per_sample * batch.weight).mean())
    # A token weight of 0 everywhere but the top-left cell counts only that cell.
    batch.weight = None
    batch.pixel_weight = torch.zeros(3, 16, 1)
    batch.pixel_weight[:, 0] = 1.0
    corner = training_loss(model, batch, generator=torch.Generator().manual_seed(0))
    assert (corner.per_sample < plain.per_sample).all() and (corner.per_sample > 0).all()
    # The denominator turns the sum into the share of a bigger (multi-rank) batch.
    half = training_loss(model, make_batch(B=3, n_out=1), generator=torch.Generator().manual_seed(0), denominator=6)
    torch.testing.assert_close(half.loss, plain.per_sample.sum() / 6)


def test_clean_loss_space_is_the_clean_estimate_error():
    model = randomize(small_model(prediction="residual"))
    batch = make_batch(B=3, n_out=1)
    velocity = training_loss(model, batch, generator=torch.Generator().manual_seed(0))
    clean = training_loss(model, batch, generator=torch.Generator().manual_seed(0), loss_space="clean")
    torch.testing.assert_close(clean.t, velocity.t)
    # x0_hat - x0 = t (v - v_hat): the same draw scored on the clean output weighs t^2.
    torch.testing.assert_close(clean.per_sample, velocity.per_sample * velocity.t ** 2)
    with pytest.raises(ValueError, match="loss_space"):
        training_loss(model, batch, generator=torch.Generator().manual_seed(0), loss_space="x0")


def test_padding_tokens_are_not_part_of_the_loss():
    """A small image beside a big one: its per-sample loss ignores the padding after it."""
    model = randomize(small_model())
    g = torch.Generator().manual_seed(1)
    ins = [[torch.randn(3, 4, 4, generator=g)], [torch.randn(3, 8, 8, generator=g)]]
    outs = [[torch.randn(3, 4, 4, generator=g)], [torch.randn(3, 8, 8, generator=g)]]
    text = TextEmbedding(torch.randn(2, 3, 16, generator=g), torch.ones(2, 3, dtype=torch.bool), torch.randn(2, 16))
    both = training_loss(model, EditBatch(pack(ins, outs, patch=P), text), generator=torch.Generator().manual_seed(0),
                         text_dropout=0.0)
    assert both.per_sample.shape == (2,) and torch.isfinite(both.per_sample).all()
    g0 = torch.Generator().manual_seed(0)
    t = logit_normal_timesteps(2, g0)
    noise = torch.randn(2, 16, 12, generator=g0)
    packed = pack(ins, outs, patch=P)
    pred = model(interpolate(packed.outputs.tokens, noise, t), t, packed, text)
    err = (pred - velocity_target(packed.outputs.tokens, noise)) ** 2
    torch.testing.assert_close(both.per_sample[0], err[0, :4].mean())  # 4 real tokens of 16


def test_text_and_reference_dropout_train_the_unconditional_branches():
    model = randomize(small_model())
    batch = make_batch()
    dropped = training_loss(model, batch, generator=torch.Generator().manual_seed(3), text_dropout=1.0)
    plain_text = batch.text
    batch.text = batch.text.null_like()
    null = training_loss(model, batch, generator=torch.Generator().manual_seed(3), text_dropout=0.0)
    torch.testing.assert_close(dropped.loss, null.loss)
    batch.text = plain_text
    blind = training_loss(model, batch, generator=torch.Generator().manual_seed(3), text_dropout=0.0, ref_dropout=1.0)
    batch.batch = batch.batch.drop_inputs(torch.ones(4, dtype=torch.bool))
    no_inputs = training_loss(model, batch, generator=torch.Generator().manual_seed(3), text_dropout=0.0)
    torch.testing.assert_close(blind.loss, no_inputs.loss)
    # ref_dropout draws after text dropout: the same seed drops the same texts with or without it.
    a = training_loss(model, make_batch(), generator=torch.Generator().manual_seed(5), text_dropout=0.5)
    b = training_loss(model, make_batch(), generator=torch.Generator().manual_seed(5), text_dropout=0.5, ref_dropout=0.0)
    torch.testing.assert_close(a.loss, b.loss)


@pytest.mark.parametrize("prediction", ["velocity", "residual", "gated"])
def test_training_lowers_the_loss_on_a_fixed_batch(prediction):
    model = small_model(prediction=prediction)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    batch = make_batch(B=4, n_in=1, n_out=1, size=4)

    def held_out_loss() -> float:  # averaged over fixed draws of t and noise
        return sum(training_loss(model, batch, generator=torch.Generator().manual_seed(100 + s)).loss.item()
                   for s in range(4)) / 4

    before = held_out_loss()
    g = torch.Generator().manual_seed(0)
    for _ in range(40):
        loss = training_loss(model, batch, generator=g).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert held_out_loss() < 0.8 * before


# --------------------------------------------------------------------------- sampler
def test_schedule_runs_from_noise_to_data():
    ts = get_schedule(10)
    assert len(ts) == 11 and ts[0] == 1.0 and ts[-1] == 0.0
    assert all(a > b for a, b in zip(ts, ts[1:]))
    shifted = get_schedule(10, shift=3.0)
    assert shifted[0] == 1.0 and shifted[-1] == 0.0
    assert all(s >= t for s, t in zip(shifted, ts))  # more time spent near the noise end
    with pytest.raises(ValueError):
        get_schedule(0)


class StraightFlow(nn.Module):
    """The exact velocity field towards one fixed goal per branch: text and images -> `full`,
    images only -> `image`, neither -> `none`. Euler integrates a straight path exactly."""

    def __init__(self, full: torch.Tensor, image: torch.Tensor, none: torch.Tensor):
        super().__init__()
        self.full, self.image, self.none = full, image, none

    def forward(self, x, t, batch, text, probe=None):
        has_text = text.mask.any(dim=1).view(-1, 1, 1)
        has_image = batch.inputs.mask.any(dim=1).view(-1, 1, 1)
        goal = torch.where(has_text, self.full, torch.where(has_image, self.image, self.none))
        return (x - goal) / t.view(-1, 1, 1)


@pytest.mark.parametrize("steps", [1, 4, 25])
def test_euler_recovers_the_end_of_a_straight_flow_with_text_and_image_guidance(steps):
    full, image, none = torch.randn(1, 4, 12), torch.randn(1, 4, 12), torch.randn(1, 4, 12)
    cond = TextEmbedding(torch.ones(2, 2, 4), torch.ones(2, 2, dtype=torch.bool), torch.ones(2, 4))
    batch = pack([[torch.randn(3, 4, 4)]] * 2, [[torch.zeros(3, 4, 4)]] * 2, patch=P)
    noise = torch.randn(2, 4, 12)
    flow = StraightFlow(full, image, none)
    out = denoise(flow, noise, batch, cond, get_schedule(steps), cfg=1.0)
    torch.testing.assert_close(out, full.expand(2, -1, -1), atol=1e-4, rtol=1e-4)
    # Text guidance w extrapolates from the image-only goal through the full one.
    out = denoise(flow, noise, batch, cond, get_schedule(steps), cfg=3.0)
    torch.testing.assert_close(out, (image + 3.0 * (full - image)).expand(2, -1, -1), atol=1e-4, rtol=1e-4)
    # Separate scales: none + s_img (image - none) + s_txt (full - image).
    out = denoise(flow, noise, batch, cond, get_schedule(steps), cfg=2.0, image_cfg=1.5)
    want = none + 1.5 * (image - none) + 2.0 * (full - image)
    torch.testing.assert_close(out, want.expand(2, -1, -1), atol=1e-4, rtol=1e-4)
    # Without inputs the image scale has nothing to act on.
    blank = pack([[]] * 2, [[torch.zeros(3, 4, 4)]] * 2, patch=P)
    out = denoise(flow, noise, blank, cond, get_schedule(steps), cfg=3.0, image_cfg=5.0)
    torch.testing.assert_close(out, (none + 3.0 * (full - none)).expand(2, -1, -1), atol=1e-4, rtol=1e-4)


def test_sample_batch_is_seeded_and_keeps_the_train_mode():
    model = randomize(small_model()).train()
    batch = make_batch(B=2, n_in=1, n_out=2)
    a = sample_batch(model, batch.batch, batch.text, steps=3, cfg=2.0, image_cfg=1.5, seed=5)
    b = sample_batch(model, batch.batch, batch.text, steps=3, cfg=2.0, image_cfg=1.5, seed=5)
    c = sample_batch(model, batch.batch, batch.text, steps=3, cfg=2.0, image_cfg=1.5, seed=6)
    assert a.shape == (2, 32, 12) and torch.equal(a, b) and not torch.equal(a, c)
    assert model.training
    gen = pack([[]] * 2, [[torch.zeros(3, 8, 4)]] * 2, patch=P)
    out = unpack(sample_batch(model, gen, batch.text, steps=2, cfg=1.0), gen.outputs, P)
    assert out[0][0].shape == (3, 8, 4)


def test_sample_takes_and_returns_uint8_images():
    import cv2
    from skimage import data

    model = randomize(small_model())
    photo = cv2.resize(data.astronaut(), (8, 8), interpolation=cv2.INTER_AREA)
    cond = make_batch(B=1).text
    wide = cv2.resize(data.astronaut(), (12, 4), interpolation=cv2.INTER_AREA)
    outs = sample(model, [photo, wide], cond, steps=3, cfg=2.0, seed=1, n_outputs=3)  # inputs of two sizes
    assert len(outs) == 3 and all(o.shape == (8, 8, 3) and o.dtype == np.uint8 for o in outs)  # the first's size
    again = sample(model, [photo, wide], cond, steps=3, cfg=2.0, seed=1, n_outputs=3)
    assert all(np.array_equal(a, b) for a, b in zip(outs, again))
    blank = sample(model, [], cond, steps=2, cfg=1.0, size=(8, 16))
    assert blank[0].shape == (8, 16, 3)
    with pytest.raises(ValueError, match="multiple of 2"):
        sample(model, [np.zeros((5, 8, 3), np.uint8)], cond, steps=1)
    with pytest.raises(ValueError, match="needs size"):
        sample(model, [], cond, steps=1)
    with pytest.raises(ValueError, match="text_dim"):
        sample(model, [photo], TextEmbedding(torch.zeros(1, 2, 8), torch.ones(1, 2, dtype=torch.bool), torch.zeros(1, 8)))
