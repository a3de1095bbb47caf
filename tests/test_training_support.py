"""Real photo datasets and a tiny text encoder for the training tests (and a check of both).

`PhotoWorker` is a small data product over scikit-image's photos, written through the real
harness (Ray -> Lance, with lineage): several tasks, shapes and aspect ratios, so buckets,
groups, mixing and per-sample weights all have something to bite on:
  edit.add / edit.remove  1 input -> 1 output, square       (a disk painted on / removed; remove
                          carries an `object` region on both sides, a routing pair)
  t2i.photo               0 inputs -> 1 output, 3:4 landscape
  video.pair              1 -> 1, the stereo pair, ~3:2; odd indices carry weight 2
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cloudpickle
import numpy as np

from datagen.params import ProductConfig, param
from datagen.product import Item, ItemRange, Plan, Product
from datagen.rng import sample_rng
from datagen.schema import Picture, Region, Sample, validate

TASKS = ["edit.add", "edit.remove", "t2i.photo", "video.pair"]
COLORS = {"red": (230, 30, 30), "blue": (30, 60, 230), "yellow": (240, 220, 30)}
TEXT_DIM = 32
# Small enough for CPU tests, real enough to exercise every path (double + single blocks,
# long skips, 4x4 patches at 32x32 -> 64 tokens per image).
TEST_MODEL = {"hidden_size": 96, "num_heads": 2, "depth_double": 1, "depth_single": 1, "patch_size": 4,
              "text_dim": TEXT_DIM}


def _photos() -> dict[str, np.ndarray]:
    import skimage.data as d

    left, right, _ = d.stereo_motorcycle()
    return {"astronaut": d.astronaut(), "coffee": d.coffee(), "chelsea": d.chelsea(), "rocket": d.rocket(),
            "left": left, "right": right}


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    import cv2

    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


class PhotoWorker:
    def __init__(self, cfg=None, context=None):
        self.photos = _photos()

    def __call__(self, item: Item, rng: np.random.Generator):
        i, task = item.index, item.data["task"]
        if task == "video.pair":
            a, b = _resize(self.photos["left"], 40, 60), _resize(self.photos["right"], 40, 60)
            return [Sample(task, "Show the next frame after <image 1>.", [Picture(a, "source")],
                           [Picture(b, "target")], weight=2.0 if i % 2 else 1.0, source_ids=[f"stereo:{i}"],
                           generator="tests.photos@1")]
        names = ["astronaut", "coffee", "chelsea", "rocket"]
        name = names[int(rng.integers(len(names)))]
        photo = self.photos[name]
        if task == "t2i.photo":
            out = _resize(photo, 48, 64)
            return [Sample(task, f"A photo: {name}.", [], [Picture(out, "target")], source_ids=[f"{name}:{i}"],
                           generator="tests.photos@1")]
        side = int(min(photo.shape[:2]) * rng.uniform(0.5, 0.9))
        y, x = int(rng.integers(0, photo.shape[0] - side + 1)), int(rng.integers(0, photo.shape[1] - side + 1))
        plain = _resize(photo[y:y + side, x:x + side], 48, 48)
        color = list(COLORS)[int(rng.integers(len(COLORS)))]
        cy, cx, r = int(rng.integers(12, 36)), int(rng.integers(12, 36)), int(rng.integers(6, 11))
        yy, xx = np.mgrid[:48, :48]
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        painted = plain.copy()
        painted[mask] = COLORS[color]
        if task == "edit.add":
            src, dst, text, side_name = plain, painted, f"Add a {color} disk to <image 1>.", "output"
            regions = [Region("edited", side_name, 0, mask)]
        else:
            src, dst, text, side_name = painted, plain, f"Remove the {color} disk from <image 1>.", "input"
            # the disk and the place it leaves: a reference -> instance pair for the routing loss
            regions = [Region("edited", side_name, 0, mask), Region("object", "input", 0, mask),
                       Region("object", "output", 0, mask)]
        return [Sample(task, text, [Picture(src, "source")], [Picture(dst, "target")], regions,
                       source_ids=[f"{name}:{i}"], generator="tests.photos@1")]


@dataclass(frozen=True)
class PhotoConfig(ProductConfig):
    num: int = param(24, "Samples to plan.", min=1, content=False)
    tasks: tuple[str, ...] = param(tuple(TASKS), "Tasks, round-robin.")


def _photo_item(tasks: tuple[str, ...], index: int) -> Item:
    return Item(index, data={"task": tasks[index % len(tasks)]})


def _photo_plan(cfg: PhotoConfig) -> Plan:
    return Plan(ItemRange(cfg.num, partial(_photo_item, cfg.tasks)),
                sources=[{"kind": "skimage", "uri": "skimage.data", "content_hash": "builtin"}])


PHOTOS = Product(name="photos", summary="Photo edits for the training tests.", config=PhotoConfig, plan=_photo_plan,
                 setup=PhotoWorker, generator="tests.photos", shard_size=8)

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers need not import tests/


def make_photo_dataset(out: str | Path, num: int = 24, seed: int = 0, tasks: list[str] | None = None) -> str:
    """Write `num` samples (tasks round-robin) through the harness; returns 'URI@VERSION'."""
    from compute import harness

    spec = harness.prepare(PHOTOS, PhotoConfig(num=num, tasks=tuple(tasks or TASKS)), out=str(out), seed=seed)
    res = harness.execute(spec, workers=1, progress=False)
    return f"{res.uri}@{res.version}"


def make_text_encoder(folder: str | Path) -> Path:
    """A random-weight BERT (32-d) with a real WordPiece tokenizer, in HF layout."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    words = sorted({w.strip(".:<>").lower() for t in ["Add a red blue yellow disk to image Remove the from",
                    "Show next frame after photo astronaut coffee chelsea rocket"] for w in t.split()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<", ">", ".", ":", *"0123456789",
             *"abcdefghijklmnopqrstuvwxyz", *[f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"], *words]
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(dict.fromkeys(vocab)), hidden_size=TEXT_DIM, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=512)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    return folder


def test_photo_samples_are_valid_records():
    worker = PhotoWorker()
    for i, task in enumerate(TASKS * 2):
        (sample,) = worker(Item(i, data={"task": task}), sample_rng(0, i))
        validate(sample)
        assert sample.task == task
        if task.startswith("edit"):  # the edit changes exactly the disk
            diff = (sample.inputs[0].pixels != sample.outputs[0].pixels).any(axis=2)
            assert diff.any() and not (diff & ~sample.regions[0].mask).any()
    assert worker(Item(1, data={"task": "video.pair"}), sample_rng(0, 1))[0].weight == 2.0


def test_tiny_text_encoder_loads_offline(tmp_path):
    from models.text_encoder import TextEncoder

    enc = TextEncoder(make_text_encoder(tmp_path / "te"))
    emb = enc.encode(["Add a red disk to <image 1>.", "A photo: coffee."])
    assert emb.tokens.shape[0] == 2 and emb.dim == TEXT_DIM
    assert emb.mask.sum(1).tolist()[0] > emb.mask.sum(1).tolist()[1]  # longer text, more tokens
