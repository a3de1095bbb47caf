"""The routing loss: token-level targets from grid masks, the attention probe, the loss itself,
and that training on it moves attention into the instance."""

from __future__ import annotations

import pytest
import torch

from models.dit import DiTConfig, UnifiedDiT
from models.flow_matching import EditBatch, training_loss
from models.packing import pack
from models.routing import AttentionProbe, RoutePair, routing_targets
from models.text_encoder import TextEmbedding

P = 2

pytestmark = pytest.mark.usefixtures("torch_one_thread")  # tiny models on a shared 2-core machine


def model(seed: int = 0) -> UnifiedDiT:
    torch.manual_seed(seed)
    return UnifiedDiT(DiTConfig(hidden_size=32, num_heads=2, depth_double=1, depth_single=1, axes_dim=(4, 6, 6),
                                text_dim=16, patch_size=P))


def text(B: int) -> TextEmbedding:
    return TextEmbedding(torch.randn(B, 3, 16), torch.ones(B, 3, dtype=torch.bool), torch.randn(B, 16))


def square_mask(grid: tuple[int, int], y: int, x: int) -> torch.Tensor:
    m = torch.zeros(grid)
    m[y, x] = 1.0
    return m


def test_targets_land_on_the_tokens_of_the_right_images():
    ref, scene = torch.randn(3, 4, 4), torch.randn(3, 6, 8)  # grids (2, 2) and (3, 4)
    batch = pack([[torch.randn(3, 4, 6), ref], []], [[torch.randn(3, 4, 4), scene], [torch.randn(3, 4, 4)]], patch=P)
    query = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    target = square_mask((3, 4), 1, 2)
    t = routing_targets([[RoutePair(in_image=1, out_image=1, target=target, query=query)], []], batch)
    assert t.valid.tolist() == [[True], [False]]
    # input 1 starts after input 0's 2x3 = 6 tokens; output 1 after output 0's 4 tokens
    assert torch.nonzero(t.query[0, 0]).flatten().tolist() == [6, 9] and t.query[0, 0].sum() == pytest.approx(1.0)
    assert torch.nonzero(t.target[0, 0]).flatten().tolist() == [4 + 1 * 4 + 2]
    assert t.image[0, 0].sum() == 12 and t.image[0, 0, :4].sum() == 0
    assert routing_targets([[], []], batch) is None
    with pytest.raises(ValueError, match="target grid"):
        routing_targets([[RoutePair(1, 1, torch.ones(2, 2))], []], batch)
    # an instance that vanished (empty mask) routes nowhere
    assert routing_targets([[RoutePair(1, 1, torch.zeros(3, 4))], []], batch) is None


def test_probe_reads_the_attention_the_model_computes():
    """With uniform attention (zero q/k weights) the map is uniform over the output cells, so the
    mass inside a one-cell instance is 1 / cells and the loss is the distance of uniform to it."""
    m = model()
    with torch.no_grad():
        for block in m.double_blocks:
            block.img_attn.qkv.weight.zero_()
            block.img_attn.qkv.bias.zero_()
            block.txt_attn.qkv.weight.zero_()
            block.txt_attn.qkv.bias.zero_()
    batch = pack([[torch.randn(3, 4, 4)]], [[torch.randn(3, 4, 8)]], patch=P)  # output grid (2, 4): 8 cells
    targets = routing_targets([[RoutePair(0, 0, square_mask((2, 4), 0, 3))]], batch)
    probe = AttentionProbe(targets, blocks=[0])
    m(torch.randn(1, 8, 12), torch.rand(1), batch, text(1), probe=probe)
    loss, mass = probe.loss()
    assert len(probe.maps) == 1
    assert float(mass) == pytest.approx(1 / 8, abs=1e-5)
    assert float(loss.detach()) == pytest.approx((1 - 1 / 8) ** 2 + 7 * (1 / 8) ** 2, abs=1e-5)


def test_training_on_the_routing_loss_moves_attention_into_the_instance():
    torch.manual_seed(0)
    m = model(1)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    ins = [[torch.randn(3, 4, 4, generator=g)] for _ in range(4)]
    outs = [[torch.randn(3, 4, 8, generator=g)] for _ in range(4)]
    batch = pack(ins, outs, patch=P)
    cells = [(0, 0), (1, 3), (0, 2), (1, 1)]  # each sample's instance sits in another cell
    targets = routing_targets([[RoutePair(0, 0, square_mask((2, 4), y, x))] for y, x in cells], batch)
    edit = EditBatch(batch, text(4), routing=targets)
    first = training_loss(m, edit, generator=torch.Generator().manual_seed(0), routing_weight=1.0, routing_blocks=[0, 1])
    for step in range(40):
        out = training_loss(m, edit, generator=torch.Generator().manual_seed(step), routing_weight=1.0,
                            routing_blocks=[0, 1])
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    last = training_loss(m, edit, generator=torch.Generator().manual_seed(0), routing_weight=1.0, routing_blocks=[0, 1])
    assert float(last.routing_mass) > 2 * float(first.routing_mass) and float(last.routing) < float(first.routing)
    # weight 0: logged, not trained (no gradient reaches attention through the probe)
    logged = training_loss(m, edit, generator=torch.Generator().manual_seed(0), routing_weight=0.0, routing_blocks=[0])
    assert logged.routing is not None and not logged.routing.requires_grad
    # references dropped: their pairs no longer count
    blind = training_loss(m, edit, generator=torch.Generator().manual_seed(0), ref_dropout=0.999999,
                          routing_weight=1.0, routing_blocks=[0])
    assert blind.routing is None
