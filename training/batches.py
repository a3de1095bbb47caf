"""A decoded step (training/data.py) -> what the model trains on (models/flow_matching.EditBatch).

Images go to the image space one by one (each keeps its size), then `models.packing.pack`
lays them out as padded token sequences; routing pairs become token-level targets; the
cached instruction features are padded into a TextEmbedding. Loss weights: 0 for rows that
failed to decode or only keep a rank in step, the record's weight in `weight_mode="loss"`.
"""

from __future__ import annotations

import numpy as np
import torch

from models.flow_matching import EditBatch
from models.packing import pack
from models.routing import RoutePair, routing_targets
from models.text_encoder import TextEmbedding
from training.data import StepBatch
from training.index import RowIndex


def text_embedding(tokens: list[np.ndarray], pooled: np.ndarray) -> TextEmbedding:
    """Per-sample (n_i, D) features -> a TextEmbedding padded to the longest (at least one slot)."""
    dim = pooled.shape[1]
    length = max([t.shape[0] for t in tokens] + [1])
    out = torch.zeros(len(tokens), length, dim)
    mask = torch.zeros(len(tokens), length, dtype=torch.bool)
    for i, t in enumerate(tokens):
        out[i, : t.shape[0]] = torch.from_numpy(t)
        mask[i, : t.shape[0]] = True
    return TextEmbedding(out, mask, torch.from_numpy(pooled).float())


def to_edit_batch(batch: StepBatch, index: RowIndex, space, device: torch.device, weight_mode: str, *,
                  patch: int, max_inputs: int, layout: str, gap: int) -> EditBatch:
    encode = space.encode
    inputs = [[encode(im) for im in sample] for sample in batch.inputs]  # (C, h, w) each
    outputs = [[encode(im) for im in sample] for sample in batch.outputs]
    packed = pack(inputs, outputs, patch=patch, max_inputs=max_inputs, layout=layout, gap=gap)
    pairs = [[RoutePair(r["in_image"], r["out_image"], torch.from_numpy(r["target"]), torch.from_numpy(r["query"]))
              for r in sample] for sample in batch.routes]
    routing = routing_targets(pairs, packed)
    weight = torch.from_numpy((batch.ok & batch.real).astype(np.float32))  # failed / filler rows weigh 0
    if weight_mode == "loss":
        weight = weight * torch.from_numpy(index.weight[batch.rows])
    return EditBatch(batch=packed.to(device), text=text_embedding(batch.text_tokens, batch.text_pooled).to(device),
                     weight=weight.to(device), routing=None if routing is None else routing.to(device))
