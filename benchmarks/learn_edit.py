"""Proof that UnifiedDiT learns edits: train the tiny preset on CPU, compare with "do nothing".

Edit pairs (object removed / added / replaced on a photo background) at 32x32 pixels,
each with its exact edited-region mask. The model trains for a fixed number of steps
(the budget is in steps, not seconds: the 2 cores are shared, so wall time is noted, not
controlled), then samples held-out pairs whose backgrounds come from photos never seen
in training. We report PSNR against the target for the model and for the identity
baseline (output = input), inside the edited region and on the whole image. The whole-
image margin is the real proof: the identity is perfect outside the region, so the model
only wins there if it also copies every untouched pixel.

Two estimates from the same model are reported. One sample (one seed) is what a user
sees; but PSNR scores distance to one target, and where the instruction leaves freedom
("add a cup on the left": where exactly on the left?) a sharp sample in a slightly
different place is penalised twice, even when the model is right. The estimate that
minimises expected squared error is the posterior mean, which we estimate by averaging
K samples of the same model with K seeds (no input pixels are mixed in).

The same budget trains twice, without and with the routing loss (`models/routing.py`): the
replaced object's tokens in the input are pulled to attend to the replacement's cells in the
output (edit.replace is the task of the three whose regions name one instance on both
sides). Reported: the attention mass inside the target region on held-out replace pairs
(uniform attention gets the region's area fraction), and every PSNR of both models.

Outputs are `gated` (models/dit.py: the change to the input times a per-pixel gate) with the loss on
the clean-output estimate, the one setting measured whose single sample beats the identity on the
whole image; the routing loss (x0.05) is ramped in, since at full weight from step 0 it shut every gate
(docs/training.md has every setting measured).

Data: `datagen.collage` (edit.remove|add|replace) when it is importable, else the small
synthetic generator below (shapes on photo crops).

    python -m benchmarks.learn_edit [--steps N] [--quick] [--only plain|routing]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from datagen.rng import sample_rng
from models.dit import PRESETS, UnifiedDiT
from models.flow_matching import EditBatch, interpolate, training_loss
from models.image_space import PixelSpace
from models.packing import pack, unpack
from models.routing import AttentionProbe, RoutePair, ramped_weight, routing_targets
from models.sampling import sample_batch
from models.text_encoder import TextEncoder
from training.sizes import grid_coverage

RESULTS = Path(__file__).resolve().parent / "results"
SIZE = 32
SEED = 20260
TASKS = ("edit.remove", "edit.add", "edit.replace")


@dataclass
class Budget:
    steps: int = 1150  # 9.9 min on 2 cores of the machine it was set on; this run notes its own wall and CPU time
    batch: int = 16
    lr: float = 1e-3
    warmup: int = 100
    ema: float = 0.995
    n_eval: int = 48
    sampler_steps: int = 16
    cfg: float = 1.5
    patch_size: int = 4
    prediction: str = "gated"  # velocity | image | residual | gated (models/dit.py; docs/training.md has each measured)
    region_weight: float = 0.0  # loss weight of edited pixels is 1 + this (the collage knows them exactly)
    max_objects: int = 3  # collage objects per canvas (CollageSpec.max_objects)
    mean_of: int = 8  # samples averaged for the posterior-mean estimate
    # Drops the input image (the image-unconditional branch). 0 here: the benchmark samples with
    # image_cfg 1, which never uses that branch, and with residual outputs a dropped input makes the
    # same output mean "a whole image" for 10% of samples (docs/training.md has the figures).
    ref_dropout: float = 0.0
    image_cfg: float = 1.0  # image guidance scale at sampling (1 = off)
    routing_weight: float = 0.0  # the routing loss's weight (0 = logged only)
    routing_blocks: str = "0,1"  # blocks whose attention the routing loss reads
    routing_ramp: int = 400  # steps over which the routing weight rises from 0 (models/routing.ramped_weight)
    init_seed: int = SEED  # parameter init only; the data and the noise keep SEED
    loss_space: str = "clean"  # velocity | clean (models/flow_matching.py)


@dataclass
class EditPair:
    task: str
    instruction: str
    source: np.ndarray  # SIZE x SIZE x 3 uint8
    target: np.ndarray  # SIZE x SIZE x 3 uint8
    region: np.ndarray  # SIZE x SIZE bool: every pixel the edit may change
    route: tuple[np.ndarray, np.ndarray] | None = None  # (input-side, output-side) instance masks of a replace


# --------------------------------------------------------------------------- synthetic pairs
# Real photos from scikit-image; the held-out split's backgrounds are never trained on.
TRAIN_PHOTOS = ("astronaut", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
                "camera", "brick", "grass", "moon", "coins", "clock", "cell")
HELD_OUT_PHOTOS = ("coffee", "motorcycle_left", "gravel")
COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 80, 230), "yellow": (245, 215, 40),
           "white": (245, 245, 245), "black": (15, 15, 15), "orange": (250, 140, 20), "purple": (150, 50, 200)}
SHAPES = ("circle", "square", "triangle", "diamond", "cross")
CELLS = {"at the top left": (8, 8), "at the top": (16, 8), "at the top right": (24, 8),
         "on the left": (8, 16), "in the centre": (16, 16), "on the right": (24, 16),
         "at the bottom left": (8, 24), "at the bottom": (16, 24), "at the bottom right": (24, 24)}
SUPERSAMPLE = 8  # shapes are drawn 8x larger and area-averaged: anti-aliased edges, exact coverage


def load_photo(name: str) -> np.ndarray:
    import skimage.data

    img = skimage.data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(skimage.data, name)()
    return np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else img[:, :, :3]


def background(rng: np.random.Generator, photos: list[np.ndarray]) -> np.ndarray:
    photo = photos[rng.integers(len(photos))]
    h, w = photo.shape[:2]
    side = int(rng.uniform(0.25, 0.6) * min(h, w))
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    crop = cv2.resize(photo[y : y + side, x : x + side], (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5 and photo.std(axis=2).mean() < 1:  # grey textures get a random tint
        crop = (crop * rng.uniform(0.5, 1.0, 3)).astype(np.uint8)
    return crop


def shape_alpha(shape: str, cx: float, cy: float, r: float) -> np.ndarray:
    """Coverage (SIZE x SIZE float in [0, 1]) of a shape centred at (cx, cy), radius r px."""
    s = SUPERSAMPLE
    canvas = np.zeros((SIZE * s, SIZE * s), np.uint8)
    c, rr = np.array([cx, cy]) * s, r * s
    if shape == "circle":
        cv2.circle(canvas, tuple(int(v) for v in c), int(rr), 255, -1)
    else:
        unit = {"square": [(-1, -1), (1, -1), (1, 1), (-1, 1)], "diamond": [(0, -1.2), (1.2, 0), (0, 1.2), (-1.2, 0)],
                "triangle": [(0, -1.1), (1.1, 0.9), (-1.1, 0.9)],
                "cross": [(-0.35, -1), (0.35, -1), (0.35, -0.35), (1, -0.35), (1, 0.35), (0.35, 0.35), (0.35, 1),
                          (-0.35, 1), (-0.35, 0.35), (-1, 0.35), (-1, -0.35), (-0.35, -0.35)]}[shape]
        pts = (np.array(unit) * rr * (0.85 if shape == "square" else 1.0) + c).astype(np.int32)
        cv2.fillPoly(canvas, [pts], 255)
    return cv2.resize(canvas, (SIZE, SIZE), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def paint(img: np.ndarray, alpha: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    out = img.astype(np.float32) * (1 - alpha[..., None]) + np.array(colour, np.float32) * alpha[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def synthetic_pair(rng: np.random.Generator, photos: list[np.ndarray]) -> EditPair:
    task = TASKS[rng.integers(len(TASKS))]
    bg = background(rng, photos)
    names = list(COLOURS)
    colour, shape = names[rng.integers(len(names))], SHAPES[rng.integers(len(SHAPES))]
    if task == "edit.add":
        where = list(CELLS)[rng.integers(len(CELLS))]
        cx, cy = CELLS[where]
        r = 5.5
    else:
        cx, cy, r = rng.uniform(8, 24), rng.uniform(8, 24), rng.uniform(4.5, 6.5)
    alpha = shape_alpha(shape, cx, cy, r)
    scene = bg
    if rng.random() < 0.5:  # a distractor that must stay: the instruction, not luck, picks the object
        dx, dy = (cx < 16) * 2 - 1, (cy < 16) * 2 - 1  # opposite quadrant, so it never overlaps
        other = SHAPES[(SHAPES.index(shape) + 1 + rng.integers(len(SHAPES) - 1)) % len(SHAPES)]
        d_alpha = shape_alpha(other, 16 + dx * 9, 16 + dy * 9, 4.5)
        scene = paint(bg, d_alpha, COLOURS[names[rng.integers(len(names))]])
    if task == "edit.remove":
        return EditPair(task, f"remove the {colour} {shape}", paint(scene, alpha, COLOURS[colour]), scene, alpha > 0)
    if task == "edit.add":
        return EditPair(task, f"add {article(colour)} {colour} {shape} {where}", scene, paint(scene, alpha, COLOURS[colour]), alpha > 0)
    new_colour = names[(names.index(colour) + 1 + rng.integers(len(names) - 1)) % len(names)]
    new_shape = SHAPES[rng.integers(len(SHAPES))]
    new_alpha = shape_alpha(new_shape, cx, cy, r)
    return EditPair(
        task,
        f"replace the {colour} {shape} with {article(new_colour)} {new_colour} {new_shape}",
        paint(scene, alpha, COLOURS[colour]),
        paint(scene, new_alpha, COLOURS[new_colour]),
        (alpha > 0) | (new_alpha > 0),
        (alpha > 0, new_alpha > 0),
    )


# --------------------------------------------------------------------------- data sources
class SyntheticPairs:
    """Pair i of a split always comes from sample_rng(SEED, i, split): deterministic data."""

    name = "synthetic shapes on scikit-image photo crops (fallback)"

    def __init__(self, held_out: bool):
        self.split = 1 if held_out else 0
        self.photos = [load_photo(n) for n in (HELD_OUT_PHOTOS if held_out else TRAIN_PHOTOS)]
        self.rejected = 0

    def pair(self, index: int) -> EditPair:
        return synthetic_pair(sample_rng(SEED, index, self.split), self.photos)

    def pairs(self, start: int, count: int) -> list[EditPair]:
        return [self.pair(i) for i in range(start, start + count)]


# Starter-pack backgrounds the held-out split keeps to itself (photos, a plain, a gradient, a pattern).
HELD_OUT_BACKGROUNDS = ("coffee", "motorcycle", "gravel", "plain_lavender", "gradient_pale_green_cream", "polka_dots")
COLLAGE_PX = 64  # the collage generator's smallest canvas; pairs are area-downscaled to SIZE


class CollagePairs(SyntheticPairs):
    """datagen.collage edit.remove|add|replace, called in-process, downscaled to SIZE."""

    name = "datagen.collage edit.remove|add|replace (starter pack, 64 px canvas area-downscaled to 32 px)"

    def __init__(self, held_out: bool, max_objects: int = 3):
        from datagen.collage import AssetPack, CollageSpec, starter_pack

        self.split = 1 if held_out else 0
        pack = starter_pack()
        keep = [b for b in pack.backgrounds if (b.asset_id.rsplit("/", 1)[-1] in HELD_OUT_BACKGROUNDS) == held_out]
        sub = AssetPack(label=f"{pack.label}:{'held-out' if held_out else 'train'}", backgrounds=tuple(keep),
                        cutouts=pack.cutouts)
        self.specs = {t: CollageSpec(task=t, size=COLLAGE_PX, assets=sub, max_objects=max_objects) for t in TASKS}
        self.rejected = 0

    def pair(self, index: int) -> EditPair:
        from datagen.collage import generate
        from datagen.schema import Reject

        for attempt in range(10):  # a Reject (unlucky draw) is counted and redrawn from a salted stream
            rng = sample_rng(SEED, index, self.split, attempt)
            sample = generate(self.specs[TASKS[rng.integers(len(TASKS))]], rng)
            if not isinstance(sample, Reject):
                break
            self.rejected += 1
        else:
            raise RuntimeError(f"collage pair {index}: 10 rejects in a row ({sample.reason})")
        small = lambda a: cv2.resize(a, (SIZE, SIZE), interpolation=cv2.INTER_AREA)  # noqa: E731
        region = np.zeros((SIZE, SIZE), bool)
        for r in sample.regions:  # every pixel any part of an edited object touches, either side
            region |= small(r.mask.astype(np.float32)) > 0
        masks = {(r.name, r.side): r.mask for r in sample.regions}
        route = None
        if ("replaced", "input") in masks and ("replacement", "output") in masks:
            route = (masks[("replaced", "input")], masks[("replacement", "output")])
        source, target = sample.inputs[0].pixels[:, :, :3], sample.outputs[0].pixels[:, :, :3]
        return EditPair(sample.task, sample.instruction, small(source), small(target), region, route)


def make_source(held_out: bool, data: str = "auto", max_objects: int = 3) -> SyntheticPairs:
    """The collage generator when it is importable (or asked for), else the synthetic one."""
    if data == "synthetic":
        return SyntheticPairs(held_out)
    try:
        import datagen.collage  # noqa: F401
    except ImportError:
        if data == "collage":
            raise
        return SyntheticPairs(held_out)
    return CollagePairs(held_out, max_objects)


def route_pairs(pair: EditPair, grid: tuple[int, int]) -> list[RoutePair]:
    """The replace pair's instance masks at the patch grid (input and output grids are the same)."""
    if pair.route is None:
        return []
    query, target = (torch.from_numpy(grid_coverage(m, grid)) for m in pair.route)
    return [RoutePair(in_image=0, out_image=0, target=target, query=query)]


def to_batch(pairs: list[EditPair], encoder: TextEncoder, space: PixelSpace, patch: int,
             region_weight: float = 0.0) -> EditBatch:
    # Edited pixels are ~5% of an image: unweighted, the loss is almost all "copy the
    # background", and the edit itself is learnt last. The masks are training data only;
    # the model never sees them.
    packed = pack([[space.encode(p.source)] for p in pairs], [[space.encode(p.target)] for p in pairs], patch=patch)
    grid = (SIZE // patch, SIZE // patch)
    pixel_weight = None
    if region_weight:
        cov = np.stack([grid_coverage(p.region, grid) for p in pairs]).reshape(len(pairs), -1, 1)  # (B, cells, 1)
        pixel_weight = 1.0 + region_weight * torch.from_numpy(cov).float()
    return EditBatch(batch=packed, text=encoder.encode([p.instruction for p in pairs]), pixel_weight=pixel_weight,
                     routing=routing_targets([route_pairs(p, grid) for p in pairs], packed))


# --------------------------------------------------------------------------- train
def blocks(b: Budget) -> list[int]:
    return [int(x) for x in b.routing_blocks.split(",") if x.strip()]


def lr_at(step: int, b: Budget) -> float:
    """Linear warm-up, flat, then linear decay over the last 30%: a short run ends on a
    small learning rate, which matters more for PSNR than the peak rate does."""
    if step < b.warmup:
        return b.lr * (step + 1) / b.warmup
    decay_from = int(0.7 * b.steps)
    return b.lr if step < decay_from else b.lr * max(0.02, (b.steps - step) / (b.steps - decay_from))


def train(model: UnifiedDiT, ema: UnifiedDiT, source: SyntheticPairs, encoder: TextEncoder, b: Budget) -> list[float]:
    space = PixelSpace()
    opt = torch.optim.AdamW(model.parameters(), lr=b.lr, weight_decay=0.0, betas=(0.9, 0.99))
    generator = torch.Generator().manual_seed(SEED)
    losses, routing = [], []
    model.train()
    for step in range(b.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, b)
        batch = to_batch(source.pairs(step * b.batch, b.batch), encoder, space, b.patch_size, b.region_weight)
        out = training_loss(model, batch, generator=generator, text_dropout=0.1, ref_dropout=b.ref_dropout,
                            routing_weight=ramped_weight(b.routing_weight, step, b.routing_ramp),
                            routing_blocks=blocks(b), loss_space=b.loss_space)
        loss = out.loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        decay = min(b.ema, (1 + step) / (10 + step))  # short warm-up: early weights fade fast
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1.0 - decay)
        losses.append(loss.item())
        if out.routing is not None:
            routing.append(float(out.routing_mass))
        if step % 50 == 0 or step == b.steps - 1:
            mass = f"  routing mass {np.mean(routing[-50:]):.3f}" if routing else ""
            print(f"step {step:5d}  loss {np.mean(losses[-50:]):.4f}  lr {lr_at(step, b):.2e}{mass}", flush=True)
    return losses


# --------------------------------------------------------------------------- evaluate
def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    diff = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    mse = diff[mask].mean() if mask is not None else diff.mean()
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def _sample_all(model: UnifiedDiT, pairs: list[EditPair], encoder: TextEncoder, b: Budget, seed: int) -> torch.Tensor:
    space, outs = PixelSpace(), []
    for i in range(0, len(pairs), 32):
        chunk = pairs[i:i + 32]
        batch = to_batch(chunk, encoder, space, b.patch_size).batch
        tokens = sample_batch(model, batch, encoder.encode([p.instruction for p in chunk]), steps=b.sampler_steps,
                              cfg=b.cfg, image_cfg=b.image_cfg, seed=seed + i)
        outs += [imgs[0] for imgs in unpack(tokens, batch.outputs, b.patch_size)]
    return torch.stack(outs)  # (N, 3, H, W) in the model's space


def _scores(pairs: list[EditPair], preds: np.ndarray) -> dict:
    rows = []
    for p, pred in zip(pairs, preds):
        rows.append({
            "task": p.task,
            "model_region": psnr(pred, p.target, p.region), "identity_region": psnr(p.source, p.target, p.region),
            "model_whole": psnr(pred, p.target), "identity_whole": psnr(p.source, p.target),
            "model_outside": psnr(pred, p.target, ~p.region),
        })
    summary = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "task"}
    summary["by_task"] = {
        t: {k: float(np.mean([r[k] for r in rows if r["task"] == t])) for k in rows[0] if k != "task"}
        for t in sorted({r["task"] for r in rows})
    }
    return summary


@torch.no_grad()
def attention_mass(model: UnifiedDiT, pairs: list[EditPair], encoder: TextEncoder, b: Budget) -> dict:
    """Share of the replaced object's attention (routing blocks, heads averaged) that lands inside
    the replacement's cells, at t = 0.5 with fixed noise, over the held-out replace pairs; and
    what uniform attention would give (the region's area fraction)."""
    routed = [p for p in pairs if p.route is not None]
    if not routed:
        return {}
    batch = to_batch(routed, encoder, PixelSpace(), b.patch_size)
    probe = AttentionProbe(batch.routing, blocks(b), grad=False)
    x0 = batch.batch.outputs.tokens
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(SEED))
    t = torch.full((len(routed),), 0.5)
    model(interpolate(x0, noise, t), t, batch.batch, batch.text, probe=probe)
    _, mass = probe.loss()
    target = batch.routing.target
    uniform = float((target.sum(-1) / batch.routing.image.sum(-1)).mean())
    return {"pairs": len(routed), "mass": float(mass), "uniform": uniform}


def evaluate(model: UnifiedDiT, pairs: list[EditPair], encoder: TextEncoder, b: Budget) -> tuple[dict, np.ndarray]:
    """PSNR of one sample and of the mean of `b.mean_of` samples (seeds SEED + 1000 k)."""
    space = PixelSpace()
    samples = [_sample_all(model, pairs, encoder, b, SEED + 1000 * k) for k in range(max(1, b.mean_of))]
    decoded = [space.decode(s).numpy() for s in samples]
    mean = space.decode(torch.stack(samples).mean(0)).numpy()
    # One seed's PSNR moves by about 0.35 dB from seed to seed (region, 48 pairs): the expected one-sample
    # figure averages the one-sample scores of all the seeds drawn; "one sample" is the first seed's.
    per_seed = [_scores(pairs, d) for d in decoded]
    summary = dict(per_seed[0])
    summary["mean_of_k"] = _scores(pairs, mean)
    summary["one_sample_over_seeds"] = {k: float(np.mean([p[k] for p in per_seed]))
                                        for k in ("model_region", "model_whole", "model_outside")}
    summary["one_sample_over_seeds"]["per_seed_region"] = [p["model_region"] for p in per_seed]
    summary["attention"] = attention_mass(model, pairs, encoder, b)
    return summary, decoded[0]


# --------------------------------------------------------------------------- report
LOSS_WORDS = {"velocity": "velocity", "clean": "clean-output estimate"}


def loss_label(b: Budget) -> str:
    loss = {"velocity": "velocity MSE", "clean": "clean-output MSE"}[b.loss_space]
    return loss + (" + routing" if b.routing_weight else "")


def save_figures(losses: list[float], pairs: list[EditPair], preds: np.ndarray, stem: str, ylabel: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    smooth = np.convolve(losses, np.ones(25) / 25, mode="valid")
    ax.plot(losses, alpha=0.3, lw=0.7, label="per step")
    ax.plot(np.arange(len(smooth)) + 24, smooth, label="25-step mean")
    ax.set(xlabel="step", ylabel=ylabel, yscale="log", title="UnifiedDiT tiny, 32x32 edits")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / f"{stem}_loss.png", dpi=110)
    plt.close(fig)
    # Contact sheet: source | target | model, 8 per row group, upscaled 3x for viewing.
    n = min(16, len(pairs))
    rows = [np.concatenate([pairs[i].source, pairs[i].target, preds[i], np.full((SIZE, 2, 3), 255, np.uint8)], axis=1)
            for i in range(n)]
    grid = np.concatenate([np.concatenate(rows[k : k + 4], axis=1) for k in range(0, n, 4)], axis=0)
    grid = cv2.resize(grid, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(RESULTS / f"{stem}_samples.png"), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))


def run(b: Budget, stem: str = "learn_edit", data: str = "auto", checkpoint: str = "", command: str = "") -> dict:
    torch.manual_seed(b.init_seed)  # only the parameter init reads the global generator
    RESULTS.mkdir(parents=True, exist_ok=True)
    encoder = TextEncoder()
    train_source, eval_source = make_source(False, data, b.max_objects), make_source(True, data, b.max_objects)
    config = PRESETS["tiny"](patch_size=b.patch_size, text_dim=encoder.dim, prediction=b.prediction)
    model = UnifiedDiT(config)
    ema = UnifiedDiT(config)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    t0, c0 = time.perf_counter(), time.process_time()
    losses = train(model, ema, train_source, encoder, b)
    train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    load = os.getloadavg()
    if checkpoint:
        from models.checkpoint import save_checkpoint

        save_checkpoint(Path(checkpoint) / "ema", ema, step=b.steps, extra={"benchmark": "learn_edit"})
        save_checkpoint(Path(checkpoint) / "raw", model, step=b.steps, extra={"benchmark": "learn_edit"})
    eval_pairs = eval_source.pairs(0, b.n_eval)
    t1, c1 = time.perf_counter(), time.process_time()
    metrics, preds = evaluate(ema, eval_pairs, encoder, b)
    sample_s, sample_cpu = time.perf_counter() - t1, time.process_time() - c1
    save_figures(losses, eval_pairs, preds, stem, loss_label(b))
    result = {
        "stem": stem,  # the figures' file names
        "command": command,
        "data": train_source.name,
        "rejected_draws": train_source.rejected + eval_source.rejected,
        "size": SIZE,
        "preset": "tiny",
        "config": config.to_dict(),
        "params": model.num_params(),
        "budget": b.__dict__,
        "train_seconds": round(train_s, 1),
        "train_cpu_seconds": round(train_cpu, 1),  # CPU time of this process: what the run costs on idle cores
        "sample_seconds": round(sample_s, 1),
        "sample_cpu_seconds": round(sample_cpu, 1),
        "load_average_after_training": [round(v, 1) for v in load],  # other jobs on the machine
        "threads": torch.get_num_threads(),
        "final_loss_mean_50": float(np.mean(losses[-50:])),
        "loss_curve": losses,  # every step's loss: the same budget and seeds give the same curve
        "metrics": metrics,
        "beats_identity": {
            "region": metrics["model_region"] > metrics["identity_region"],
            "whole": metrics["model_whole"] > metrics["identity_whole"],
            "mean_of_k_region": metrics["mean_of_k"]["model_region"] > metrics["identity_region"],
            "mean_of_k_whole": metrics["mean_of_k"]["model_whole"] > metrics["identity_whole"],
        },
    }
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2))
    return result


def routing_label(b: dict) -> str:
    ramp = b.get("routing_ramp", 0)
    return f"routing loss x{b['routing_weight']:g}" + (f", ramped in over {ramp} steps" if ramp else "")


def run_label(b: dict) -> str:
    return routing_label(b) if b.get("routing_weight") else "no routing loss"


def one_line(r: dict) -> str:
    """A further run in a sentence: what differs from the table's budget is the reader's to see in its JSON."""
    m, b = r["metrics"], r["budget"]
    k, att = m["mean_of_k"], (m.get("attention") or {}).get("mass")
    return (f"`{r['stem']}` ({run_label(b)}, init seed {b.get('init_seed', SEED)}): one sample region "
            f"{m['model_region']:.2f}, whole {m['model_whole']:.2f}, outside {m['model_outside']:.2f} dB; mean of "
            f"{b['mean_of']} region {k['model_region']:.2f}, whole {k['model_whole']:.2f} dB"
            + (f"; one sample averaged over the {b['mean_of']} seeds: region {e['model_region']:.2f}, whole "
               f"{e['model_whole']:.2f} dB" if (e := m.get("one_sample_over_seeds")) else "")
            + (f"; attention mass {att:.3f}" if att is not None else "") + ".")


def markdown(results: list[dict], others: list[dict] = ()) -> str:
    """The README section: the runs side by side, each named by its own budget; `others` as one line each."""
    commands = list(dict.fromkeys(r["command"] for r in results if r.get("command")))
    runs = [(run_label(r["budget"]), r) for r in results]
    first = results[0]
    b = first["budget"]
    lines = [
        "## learn_edit: UnifiedDiT tiny learns 32x32 collage edits on CPU",
        "",
        f"{first['params'] / 1e6:.1f}M parameters, {b['steps']} steps x {b['batch']} pairs, output parametrisation "
        f"`{b['prediction']}`, loss on the {LOSS_WORDS[b.get('loss_space', 'velocity')]}, reference dropout {b['ref_dropout']:g}; "
        f"{b['sampler_steps']} Euler steps, text cfg "
        f"{b['cfg']}, image cfg {b['image_cfg']}; {b['n_eval']} held-out pairs with unseen backgrounds. Data: "
        f"{first['data']}. One sample = seed {SEED}; mean of {b['mean_of']} = the posterior-mean estimate (average "
        f"of {b['mean_of']} samples, seeds differ), the estimate PSNR rewards.",
        "",
        "Time per run (the machine is shared, so wall time is noisy; CPU time is this process's own): " + "; ".join(
            f"{name}: training {r['train_seconds'] / 60:.1f} min wall / {r['train_cpu_seconds'] / 60:.1f} CPU-min "
            f"on {r['threads']} thread(s), sampling {r['sample_seconds'] / 60:.1f} min wall / "
            f"{r.get('sample_cpu_seconds', 0) / 60:.1f} CPU-min, load average after training "
            f"{r.get('load_average_after_training', ['?'])[0]}" for name, r in runs) + "."
        + (" Command" + ("s" if len(commands) > 1 else "") + ": " + ", ".join(f"`{c}`" for c in commands) + "."
           if commands else ""),
        "",
        "| PSNR (dB), mean over pairs | " + " | ".join(f"one sample, {n}" for n, _ in runs) + " | "
        + " | ".join(f"mean of {b['mean_of']}, {n}" for n, _ in runs) + " | identity (output = input) |",
        "| --- |" + " ---: |" * (2 * len(runs) + 1),
    ]

    def row(label: str, key: str, identity: str) -> str:
        one = [f"{r['metrics'][key]:.1f}" for _, r in runs]
        many = [f"{r['metrics']['mean_of_k'][key]:.1f}" for _, r in runs]
        return f"| {label} | " + " | ".join(one + many) + f" | {identity} |"

    m = first["metrics"]
    lines += [row("inside edited region", "model_region", f"{m['identity_region']:.1f}"),
              row("whole image", "model_whole", f"{m['identity_whole']:.1f}"),
              row("outside region", "model_outside", "inf")]
    if all("one_sample_over_seeds" in r["metrics"] for _, r in runs):  # one seed moves by ~0.35 dB
        e = [r["metrics"]["one_sample_over_seeds"] for _, r in runs]
        lines.append(f"| inside edited region, one sample averaged over the {b['mean_of']} seeds | "
                     + " | ".join(f"{x['model_region']:.2f}" for x in e) + " |" + " |" * len(runs)
                     + f" {m['identity_region']:.1f} |")
    for task, t in m["by_task"].items():
        one = [f"{r['metrics']['by_task'][task]['model_region']:.1f} / {r['metrics']['by_task'][task]['model_whole']:.1f}"
               for _, r in runs]
        many = [f"{r['metrics']['mean_of_k']['by_task'][task]['model_region']:.1f} / "
                f"{r['metrics']['mean_of_k']['by_task'][task]['model_whole']:.1f}" for _, r in runs]
        lines.append(f"| {task}: region / whole | " + " | ".join(one + many)
                     + f" | {t['identity_region']:.1f} / {t['identity_whole']:.1f} |")
    yn = lambda v: "yes" if v else "no"  # noqa: E731
    lines.append("")
    for name, r in runs:
        won = r["beats_identity"]
        lines.append(f"Beats identity ({name}), one sample: region **{yn(won['region'])}**, whole image "
                     f"**{yn(won['whole'])}**; mean of {b['mean_of']}: region **{yn(won['mean_of_k_region'])}**, whole "
                     f"image **{yn(won['mean_of_k_whole'])}**.")
    att = [(name, r["metrics"].get("attention") or {}) for name, r in runs]
    if all(a for _, a in att):
        lines += ["", f"Attention mass inside the target region (held-out edit.replace pairs, {att[0][1]['pairs']} of "
                  f"them: the replaced object's tokens -> the replacement's cells, blocks {b['routing_blocks']}, t = 0.5): "
                  + ", ".join(f"{name} **{a['mass']:.3f}**" for name, a in att)
                  + f"; uniform attention {att[0][1]['uniform']:.3f}."]
    stems = [r["stem"] for _, r in runs]
    lines += ["", f"Loss curves: `benchmarks/results/{stems[0]}_loss.png`"
              + "".join(f", `{s}_loss.png`" for s in stems[1:]) + f"; samples: `{stems[0]}_samples.png`"
              + "".join(f", `{s}_samples.png`" for s in stems[1:]) + "."]
    if others:
        lines += ["", "Further runs of the same budget (JSON under benchmarks/results/):", ""]
        lines += [f"- {one_line(r)}" for r in others]
    return "\n".join(lines)


def report(stems: list[str]) -> str:
    """Rebuild the section from saved runs: the first two stems make the table, the rest one line each."""
    results = [json.loads((RESULTS / f"{s}.json").read_text()) for s in stems]
    for s, r in zip(stems, results):
        r.setdefault("stem", s)
    return markdown(results[:2], others=results[2:])


# The routed run's weight. With gated outputs (ramped in) 0.5, 0.25, 0.1 and 0.05 all raise the attention
# mass to about 0.44; the region falls at 0.25 and 0.5, at 0.05 not beyond seed noise (docs/training.md).
ROUTING_WEIGHT = 0.05


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, value in Budget().__dict__.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = 1 on a busy machine, else all")
    parser.add_argument("--stem", default="learn_edit", help="file name stem under benchmarks/results/")
    parser.add_argument("--checkpoint", default="", help="save the trained model (raw and EMA) under this folder")
    parser.add_argument("--data", choices=["auto", "collage", "synthetic"], default="auto")
    parser.add_argument("--only", choices=["both", "plain", "routing"], default="both",
                        help="train without the routing loss, with it (routing weight from --routing-weight, "
                        f"else {ROUTING_WEIGHT}), or both (the README table)")
    parser.add_argument("--quick", action="store_true", help="a 60-step smoke run")
    parser.add_argument("--report", nargs="+", metavar="STEM", default=None,
                        help="train nothing: rebuild the section from saved results (two in the table, more as lines)")
    args = vars(parser.parse_args(argv or []))
    if args["report"]:
        return report(args["report"])
    args.pop("report")
    threads, stem, data, checkpoint = args.pop("threads"), args.pop("stem"), args.pop("data"), args.pop("checkpoint")
    only, quick = args.pop("only"), args.pop("quick")
    # Two intra-op threads on cores other jobs keep busy spin-wait on each other, so a
    # loaded machine gets one thread.
    busy = os.getloadavg()[0] > (os.cpu_count() or 1) + 1
    torch.set_num_threads(threads or (1 if busy else os.cpu_count() or 1))
    b = Budget(**args)
    if quick:
        b = Budget(steps=60, batch=8, warmup=10, n_eval=16, sampler_steps=8, mean_of=2, routing_ramp=20,
                   prediction=b.prediction, loss_space=b.loss_space)
    routed_weight = b.routing_weight or ROUTING_WEIGHT
    command = ("python -m benchmarks.learn_edit " + " ".join(argv or [])).strip()
    plain = routed = None
    if only in ("both", "plain"):
        plain = run(replace(b, routing_weight=0.0), stem, data, checkpoint and f"{checkpoint}/plain", command)
        print(json.dumps(plain["metrics"], indent=2))
    if only in ("both", "routing"):
        routed = run(replace(b, routing_weight=routed_weight), f"{stem}_routing", data,
                     checkpoint and f"{checkpoint}/routing", command)
        print(json.dumps(routed["metrics"], indent=2))
    return markdown([r for r in (plain, routed) if r])


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(main(sys.argv[1:]))
