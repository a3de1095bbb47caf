"""UnifiedDiT: N input images + an instruction -> M output images (0-4 in, 1-4 out).

Every image is a pseudo-frame at its own size: it is patchified on its own, its tokens get
a 3D RoPE position (frame time, row, column of its own grid; see `models/rope.py`), and the
clean input tokens are concatenated with the noisy output tokens into one image sequence;
with `align_inputs` each output token also gets the input patches of its own cell.
Double-stream blocks (separate image/text weights, joint attention) are followed by
single-stream blocks over [text; inputs; outputs]; every block is adaLN-Zero modulated by
timestep + pooled text. Only the output tokens reach the final layer, so the loss and the
unpatchify see outputs only.

Batches: samples of one batch may differ in number and size of images; `models/packing.py`
pads each side to its longest sample and masks the padding out of every attention, as it
does for text.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor, nn

from models.layers import DoubleStreamBlock, LastLayer, LongSkip, MLPEmbedder, SingleStreamBlock, timestep_embedding
from models.math import embed_positions
from models.packing import Packed
from models.rope import LAYOUTS, MARGINAL_GAP, text_positions
from models.routing import AttentionProbe
from models.text_encoder import TextEmbedding

TIME_EMBED_DIM = 256
PREDICTIONS = ("velocity", "image", "residual", "gated")
# Image and residual prediction divide by t; below this the division would amplify tiny
# errors into huge velocities (JiT clips at 0.05 the same way).
MIN_T_FOR_IMAGE = 0.05


@dataclass
class DiTConfig:
    hidden_size: int = 192
    num_heads: int = 4
    depth_double: int = 2
    depth_single: int = 4
    mlp_ratio: float = 4.0
    in_channels: int = 3  # channels of the image space: 3 for pixels, 4/16 for VAE latents
    patch_size: int = 2
    text_dim: int = 384  # width of the text encoder's token features (all-MiniLM-L6-v2: 384)
    axes_dim: tuple[int, int, int] = (16, 16, 16)  # RoPE channels of (t, h, w); sums to the head dim
    theta: float = 10_000.0
    rope_layout: str = "marginal"  # "marginal" | "uniform"
    rope_gap: int = MARGINAL_GAP
    qkv_bias: bool = True
    long_skips: bool = True
    # Each output token also receives the patches of every input at its own cell (channel
    # concat, as InstructPix2Pix conditions on the source). DreamOmni avoids channel concat and
    # conditions only by joint attention over the concatenated tokens, which this model always
    # does: align_inputs=False is that paper's setup; True adds the shortcut on top. The network
    # must learn to use it (zero init), but copying untouched pixels no longer waits for attention
    # to become sharp. Needs inputs of the outputs' size, which the batch contract already asks.
    align_inputs: bool = True
    max_inputs: int = 4
    max_outputs: int = 4
    # What the last layer predicts; forward always returns the velocity. "image": the
    # clean output x0, turned into v = (x_t - x0) / t (JiT, Li & He 2025: in pixel space a
    # patch of noise is full-rank and hard to predict, a patch of image is not).
    # "residual": x0 minus the first input at the same cell (its aligned patches; 0 where
    # no input frames the same view), so the zero-initialised model starts as "copy the
    # input" and learns only what the instruction changes.
    # "gated": the residual times a per-pixel gate in (0, 1) (a sigmoid of extra outputs), so an
    # untouched pixel is copied when either factor is near 0: its error is the product of two
    # small numbers instead of one. Where no input frames the view the anchor is 0 and the gate must open.
    prediction: str = "velocity"  # "velocity" | "image" | "residual" | "gated"

    def __post_init__(self) -> None:
        self.axes_dim = tuple(int(a) for a in self.axes_dim)  # JSON gives a list back
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if sum(self.axes_dim) != self.head_dim or len(self.axes_dim) != 3:
            raise ValueError(f"axes_dim {self.axes_dim} must be 3 axes summing to the head dim {self.head_dim}")
        if self.rope_layout not in LAYOUTS:
            raise ValueError(f"rope_layout {self.rope_layout!r} is not one of {LAYOUTS}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction {self.prediction!r} is not one of {PREDICTIONS}")
        if self.depth_double + self.depth_single < 1:
            raise ValueError("the model needs at least one block")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def patch_dim(self) -> int:
        return self.in_channels * self.patch_size**2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DiTConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown DiTConfig keys {unknown}; this code knows {sorted(known)}")
        # Configs saved before `align_inputs` existed describe models without that layer.
        return cls(**{"align_inputs": False, **data})


# --------------------------------------------------------------------------- presets
# tiny uses RoPE theta 100 and gives the spatial axes most channels: over an 8-cell grid,
# theta 10 000 leaves all but 2-3 frequency pairs nearly still, so neighbouring cells look
# alike and "attend to the same cell of the input" cannot be sharp.
def tiny(**kw) -> DiTConfig:  # ~5M parameters: CPU experiments at 32x32 pixels (an 8x8 patch grid)
    return DiTConfig(**{"hidden_size": 192, "num_heads": 4, "depth_double": 2, "depth_single": 4, "patch_size": 4,
                        "axes_dim": (8, 20, 20), "theta": 100.0, **kw})


def small(**kw) -> DiTConfig:  # ~40M parameters
    return DiTConfig(**{"hidden_size": 384, "num_heads": 6, "depth_double": 4, "depth_single": 8, "axes_dim": (16, 24, 24), **kw})


def base(**kw) -> DiTConfig:  # ~300M parameters: GPU, VAE latents
    return DiTConfig(**{"hidden_size": 768, "num_heads": 12, "depth_double": 8, "depth_single": 16, "axes_dim": (16, 24, 24), **kw})


PRESETS = {"tiny": tiny, "small": small, "base": base}


# --------------------------------------------------------------------------- model
class UnifiedDiT(nn.Module):
    def __init__(self, config: DiTConfig):
        super().__init__()
        self.config = c = config
        self.img_in = nn.Linear(c.patch_dim, c.hidden_size)  # per-image patch embedding (shared weights)
        self.aligned_in = nn.Linear(c.max_inputs * c.patch_dim, c.hidden_size, bias=False) if c.align_inputs else None
        # RoPE is relative, so a token cannot tell from it alone whether it is clean or noisy;
        # a learnt role vector (0 = input, 1 = output) tells it.
        self.frame_role = nn.Parameter(torch.zeros(2, c.hidden_size))
        self.time_in = MLPEmbedder(TIME_EMBED_DIM, c.hidden_size)
        self.vector_in = MLPEmbedder(c.text_dim, c.hidden_size)
        self.txt_in = nn.Linear(c.text_dim, c.hidden_size)
        self.double_blocks = nn.ModuleList(
            DoubleStreamBlock(c.hidden_size, c.num_heads, c.mlp_ratio, c.qkv_bias) for _ in range(c.depth_double)
        )
        self.single_blocks = nn.ModuleList(
            SingleStreamBlock(c.hidden_size, c.num_heads, c.mlp_ratio) for _ in range(c.depth_single)
        )
        n_blocks = c.depth_double + c.depth_single
        self.skips = nn.ModuleList(LongSkip(c.hidden_size) for _ in range(n_blocks // 2 if c.long_skips else 0))
        gates = c.patch_size**2 if c.prediction == "gated" else 0  # one per pixel, shared by its channels
        self.final_layer = LastLayer(c.hidden_size, c.patch_dim + gates)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        def _basic_init(module: nn.Module) -> None:
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

        self.apply(_basic_init)
        nn.init.normal_(self.frame_role, std=0.02)
        for embedder in (self.time_in, self.vector_in):
            nn.init.normal_(embedder.in_layer.weight, std=0.02)
            nn.init.normal_(embedder.out_layer.weight, std=0.02)
        # adaLN-Zero: every block's gates start at 0, so each block is the identity and the
        # network starts as a shallow, well-conditioned map that deepens as gates open (DiT
        # found this clearly better than other conditioning inits).
        for block in self.double_blocks:
            for mod in (block.img_mod, block.txt_mod):
                nn.init.zeros_(mod.lin.weight)
                nn.init.zeros_(mod.lin.bias)
        for block in self.single_blocks:
            nn.init.zeros_(block.modulation.lin.weight)
            nn.init.zeros_(block.modulation.lin.bias)
        # Zero output layer: the first prediction is exactly 0, near the mean velocity
        # E[noise - x0], instead of a random field that the first steps must unlearn. Gated outputs'
        # gates so start half open; measured on learn_edit (1150 steps, clean loss), gates started at
        # sigmoid(2) = 0.88 train a model like the residual one (whole image 23.0 dB, under the
        # identity's 23.5), from 0.5 it reaches 24.7.
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].weight)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)
        # The aligned-input path starts closed: the initial model is the plain sequence DiT.
        if self.aligned_in is not None:
            nn.init.zeros_(self.aligned_in.weight)
        # Long skips start as [I | 0]: they pass the trunk through unchanged, so the
        # initial network is the plain DiT and the skip path is learnt, not imposed.
        for skip in self.skips:
            hidden = skip.linear.out_features
            nn.init.zeros_(skip.linear.weight)
            with torch.no_grad():
                skip.linear.weight[:, :hidden].copy_(torch.eye(hidden))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, x: Tensor, t: Tensor, batch: Packed, text: TextEmbedding,
                probe: AttentionProbe | None = None) -> Tensor:
        """Velocity of the noisy output tokens.

        x: (B, Lo, P) noisy output tokens, laid out as `batch.outputs`; t: (B,) in [0, 1]
        (1 = pure noise); batch: clean input tokens and both sides' layout
        (`models/packing.py`; `batch.outputs.tokens` is never read); text: tokens (B, Lt, Dt),
        mask (B, Lt), pooled (B, Dt); probe: records attention maps for the routing loss.
        Returns (B, Lo, P), zero at padding.
        """
        c = self.config
        inp, outp = batch.inputs, batch.outputs
        B, Lo, P = x.shape
        Li = inp.length
        if P != c.patch_dim or tuple(outp.mask.shape) != (B, Lo):
            raise ValueError(f"noisy tokens {tuple(x.shape)} do not match patch_dim={c.patch_dim} and the output "
                             f"layout {tuple(outp.mask.shape)}")
        n_in, n_out = max(map(len, inp.grids), default=0), min(map(len, outp.grids), default=0)
        if n_in > c.max_inputs or n_out < 1 or max(map(len, outp.grids)) > c.max_outputs:
            raise ValueError(f"a sample has inputs / outputs outside 0-{c.max_inputs} / 1-{c.max_outputs}")

        img_in = self.img_in(inp.tokens.to(x)) + self.frame_role[0]  # (B, Li, D) clean inputs
        img_out = self.img_in(x) + self.frame_role[1]  # (B, Lo, D) noisy outputs
        if self.aligned_in is not None:
            img_out = img_out + self.aligned_in(batch.aligned.to(x))  # (B, Lo, D) same-cell input patches
        img = torch.cat((img_in, img_out), dim=1)  # (B, Li+Lo, D)
        txt = self.txt_in(text.tokens.to(img))  # (B, Lt, D)
        vec = self.time_in(timestep_embedding(t, TIME_EMBED_DIM).to(img)) + self.vector_in(text.pooled.to(img))  # (B, D)

        n_txt = txt.shape[1]
        ids = torch.cat((text_positions(n_txt).expand(B, -1, -1), inp.ids, outp.ids), dim=1)  # (B, Lt+Li+Lo, 3)
        pe = embed_positions(ids.to(x.device), c.axes_dim, c.theta)  # (B, 1, Lt+Li+Lo, hd/2, 2, 2)
        mask = torch.cat((text.mask.to(x.device, torch.bool), inp.mask.to(x.device), outp.mask.to(x.device)), dim=1)
        mask = None if bool(mask.all()) else mask  # (B, Lt+Li+Lo); SDPA's fast path needs no mask
        if probe is not None:
            probe.bind(n_txt, Li, Lo)

        n_blocks = len(self.double_blocks) + len(self.single_blocks)
        n_skips, stack = len(self.skips), []
        for i, block in enumerate(self.double_blocks):
            if n_skips and i >= n_blocks - n_skips:
                img = self.skips[n_blocks - 1 - i](img, stack.pop())  # (B, Li+Lo, D)
            img, txt = block(img=img, txt=txt, vec=vec, pe=pe, mask=mask, probe=_chosen(probe, i))
            if i < n_skips:
                stack.append(img)
        seq = torch.cat((txt, img), dim=1)  # (B, Lt+Li+Lo, D)
        for j, block in enumerate(self.single_blocks):
            i = len(self.double_blocks) + j
            if n_skips and i >= n_blocks - n_skips:
                fused = self.skips[n_blocks - 1 - i](seq[:, n_txt:], stack.pop())  # (B, Li+Lo, D)
                seq = torch.cat((seq[:, :n_txt], fused), dim=1)  # (B, Lt+Li+Lo, D)
            seq = block(seq, vec=vec, pe=pe, mask=mask, probe=_chosen(probe, i))  # (B, Lt+Li+Lo, D)
            if i < n_skips:
                stack.append(seq[:, n_txt:])
        out = self.final_layer(seq[:, n_txt + Li:], vec)  # (B, Lo, P) output tokens only
        if c.prediction == "gated":
            out = gated_residual(out, c.patch_dim, c.in_channels)  # (B, Lo, P)
        if c.prediction != "velocity":
            x0 = out if c.prediction == "image" else batch.anchor().to(out) + out  # (B, Lo, P) clean estimate
            out = (x - x0) / t.clamp(min=MIN_T_FOR_IMAGE).view(B, 1, 1).to(x)  # (B, Lo, P) its velocity
        return out * outp.mask[..., None].to(out)


def gated_residual(out: Tensor, patch_dim: int, channels: int) -> Tensor:
    """(B, L, P + p*p) last-layer outputs -> (B, L, P) residual: values times the sigmoid of
    their pixel's gate. The values start at 0 (zero last layer), so the model starts as "copy the
    input" like the residual one."""
    values, gates = out[..., :patch_dim], out[..., patch_dim:]
    return values * torch.sigmoid(gates).repeat(1, 1, channels)  # patches are (C p q): gates tile per channel


def _chosen(probe: AttentionProbe | None, block: int) -> AttentionProbe | None:
    return probe if probe is not None and block in probe.blocks else None
