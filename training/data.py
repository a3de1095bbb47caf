"""Lance -> Ray Data -> decode at native sizes -> one batch per step.

Design (determinism first): the rows of each step come from `RunPlan` (a pure function of
the step), never from Ray's scheduling. Each rank turns its own slice of the next steps into
a small Ray Dataset (one item per step: which rows, which stage), and Ray Data runs
`decode_step` on it: a Lance `take` of those rows at the pinned version, image decode, each
image fitted to the stage's pixel budget at its own aspect ratio (`training/sizes.py`), the
rows' routing pairs at the patch grids (`training/regions.py`) and their encoded instructions
from the text cache (`training/text_cache.py`). `preserve_order` keeps steps in order while
several decode tasks run ahead of the loop (`prefetch_steps`), on CPUs the Train workers did
not take.

Why not `streaming_split` of one big dataset: it hands blocks to whichever rank asks
first, so which sample a rank sees would depend on timing, and a resumed run could not
see the batches the lost one would have.

A row that fails to decode does not stop the run: it stays in the batch with `ok=False`
(a one-cell blank, loss weight 0, so every rank still runs the same collective ops) and is
reported with its sample id and reason.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from training.mixing import RunPlan
from training.regions import PairSpec, route_pairs
from training.sizes import fit_size, resize

# Steps per Ray Dataset: bounds the plan held in memory; a window boundary costs one
# step of decode latency, i.e. nothing at this length.
WINDOW_STEPS = 512
TAKE_COLUMNS = ["sample_id", "instruction", "inputs", "outputs", "regions"]


@dataclass
class StepBatch:
    step: int
    stage: int
    rows: np.ndarray  # (b,) rows of the stage's RowIndex
    real: np.ndarray  # (b,) bool: False for a row repeated only to keep this rank in step
    ok: np.ndarray  # (b,) bool: False where the row failed to decode
    global_batch: int  # samples of the step over all ranks: the loss's denominator
    inputs: list[list[np.ndarray]]  # per sample, its inputs as HxWx3 uint8 at their fitted sizes
    outputs: list[list[np.ndarray]]  # per sample, its outputs
    routes: list[list[dict[str, Any]]]  # per sample: {in_image, out_image, query, target} at patch grids
    text_tokens: list[np.ndarray]  # per sample (n, D) float32 encoded instruction; (0, D) without a cache
    text_pooled: np.ndarray  # (b, D) float32
    instructions: list[str]
    sample_ids: list[str]
    errors: list[dict[str, str]]
    decode_seconds: float

    def __len__(self) -> int:
        return len(self.rows)


# --------------------------------------------------------------------------- decode (runs in Ray Data tasks)
_OPEN: dict[str, Any] = {}


def _open(ref: str):
    """Lance datasets opened once per decode process (a version never changes)."""
    if ref not in _OPEN:
        from datagen.store import lance_io

        _OPEN[ref] = lance_io.open_dataset(ref)
    return _OPEN[ref]


def read_rows(refs: list[str], dataset: np.ndarray, position: np.ndarray) -> list[dict[str, Any]]:
    """Lance random access: the stored rows at (dataset, position), in the order asked."""
    out: list[dict[str, Any] | None] = [None] * len(position)
    for d in np.unique(dataset).tolist():
        where = np.flatnonzero(dataset == d)
        wanted = np.unique(position[where])
        rows = _open(refs[d]).take(wanted.tolist(), columns=TAKE_COLUMNS).to_pylist()
        by_pos = dict(zip(wanted.tolist(), rows))
        for k in where.tolist():
            out[k] = by_pos[int(position[k])]
    return out  # type: ignore[return-value]


def decode_sample(row: dict[str, Any], resolution: int, multiple: int, token_px: int,
                  specs: list[PairSpec]) -> tuple[list[np.ndarray], list[np.ndarray], list[dict[str, Any]]]:
    """(inputs, outputs, routing pairs) of one stored row at native sizes; raises ValueError when it cannot."""
    from datagen.images import decode

    sides = []
    for key in ("inputs", "outputs"):
        images = []
        for p in row[key] or []:
            pixels = decode(p["data"])
            images.append(resize(pixels, fit_size(pixels.shape[0], pixels.shape[1], resolution, multiple),
                                 p.get("role") or ""))
        sides.append(images)
    inputs, outputs = sides
    if not outputs:
        raise ValueError("row has no output image")
    grids = [[(im.shape[0] // token_px, im.shape[1] // token_px) for im in side] for side in sides]
    routes = route_pairs(row.get("regions"), specs, grids[0], grids[1]) if specs else []
    return inputs, outputs, routes


def _blank(multiple: int) -> np.ndarray:
    return np.zeros((multiple, multiple, 3), np.uint8)


def decode_step(batch: dict[str, np.ndarray], refs: list[list[str]], caches: list[list[str]], specs: list[list[str]],
                text_dim: int) -> dict[str, list]:
    """Ray Data map_batches fn: plan items (one per step) -> decoded samples, routes and text, packed."""
    from training import text_cache
    from training.regions import parse_pairs

    out: dict[str, list] = {"step": [], "payload": [], "manifest": [], "decode_s": []}
    for i in range(len(batch["step"])):
        t0 = time.perf_counter()
        item = json.loads(batch["item"][i])
        k = item["stage"]
        rows = read_rows(refs[k], np.asarray(item["dataset"]), np.asarray(item["position"], dtype=np.int64))
        pair_specs = parse_pairs(specs[k])
        arrays: list[np.ndarray] = []
        samples, errors = [], []
        for row in rows:
            entry: dict[str, Any] = {"sample_id": row.get("sample_id") or "", "instruction": row.get("instruction") or "",
                                     "ok": True}
            try:
                inputs, outputs, routes = decode_sample(row, item["resolution"], item["multiple"], item["token_px"],
                                                        pair_specs)
            except (ValueError, KeyError, TypeError) as exc:
                entry["ok"] = False
                inputs, outputs, routes = [], [_blank(item["multiple"])], []
                errors.append({"sample_id": entry["sample_id"], "reason": "decode_error",
                               "detail": f"{type(exc).__name__}: {exc}"})
            entry["inputs"] = _add(arrays, inputs)
            entry["outputs"] = _add(arrays, outputs)
            entry["routes"] = [{"in_image": r["in_image"], "out_image": r["out_image"],
                                "query": _add(arrays, [r["query"]])[0], "target": _add(arrays, [r["target"]])[0]}
                               for r in routes]
            samples.append(entry)
        texts = _texts(text_cache, caches[k], item["dataset"], item["text_row"], text_dim)
        for entry, (tokens, pooled) in zip(samples, texts):
            entry["text"] = _add(arrays, [tokens, pooled])
        payload, layout = _pack(arrays)
        manifest = {key: item[key] for key in ("step", "stage", "rows", "real", "global_batch")}
        manifest.update(samples=samples, errors=errors, arrays=layout)
        out["step"].append(item["step"])
        out["payload"].append(payload)
        out["manifest"].append(json.dumps(manifest))
        out["decode_s"].append(time.perf_counter() - t0)
    return out


def _texts(text_cache, caches: list[str], dataset: list[int], text_row: list[int], dim: int):
    """Each row's (tokens, pooled) from its dataset's text cache; empty features where there is none."""
    out: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(dataset)
    for d in sorted(set(dataset)):
        where = [j for j, x in enumerate(dataset) if x == d]
        if caches[d]:
            for j, feats in zip(where, text_cache.read(caches[d], [text_row[j] for j in where], dim)):
                out[j] = feats
    empty = (np.zeros((0, dim), np.float32), np.zeros(dim, np.float32))
    return [o if o is not None else empty for o in out]


def _add(arrays: list[np.ndarray], new: list[np.ndarray]) -> list[int]:
    """Append arrays to the step's payload; return their indices."""
    start = len(arrays)
    arrays.extend(np.ascontiguousarray(a) for a in new)
    return list(range(start, len(arrays)))


def _pack(arrays: list[np.ndarray]) -> tuple[bytes, list[list]]:
    """Arrays -> one byte string + [shape, dtype, offset] each (no pickle crosses the object store)."""
    layout, at = [], 0
    for a in arrays:
        layout.append([list(a.shape), a.dtype.str, at])
        at += a.nbytes
    return b"".join(a.tobytes() for a in arrays), layout


def _unpack_arrays(payload: bytes, layout: list[list]) -> list[np.ndarray]:
    out = []
    for shape, dtype, at in layout:
        dt = np.dtype(dtype)
        n = int(np.prod(shape)) if shape else 1
        out.append(np.frombuffer(payload, dt, count=n, offset=at).reshape(shape).copy())  # writable for torch
    return out


def _unpack(row: dict[str, np.ndarray]) -> StepBatch:
    m = json.loads(row["manifest"][0])
    arrays = _unpack_arrays(bytes(row["payload"][0]), m["arrays"])
    samples = m["samples"]
    pooled = [arrays[s["text"][1]] for s in samples]
    return StepBatch(
        step=int(m["step"]), stage=int(m["stage"]), rows=np.asarray(m["rows"], dtype=np.int64),
        real=np.asarray(m["real"], dtype=bool), ok=np.array([s["ok"] for s in samples], dtype=bool),
        global_batch=int(m["global_batch"]),
        inputs=[[arrays[j] for j in s["inputs"]] for s in samples],
        outputs=[[arrays[j] for j in s["outputs"]] for s in samples],
        routes=[[{"in_image": r["in_image"], "out_image": r["out_image"], "query": arrays[r["query"]],
                  "target": arrays[r["target"]]} for r in s["routes"]] for s in samples],
        text_tokens=[arrays[s["text"][0]] for s in samples], text_pooled=np.stack(pooled).astype(np.float32),
        instructions=[s["instruction"] for s in samples], sample_ids=[s["sample_id"] for s in samples],
        errors=m["errors"], decode_seconds=float(row["decode_s"][0]),
    )


# --------------------------------------------------------------------------- the per-rank stream
def plan_items(plan: RunPlan, rank: int, world: int, steps: range, geometry: dict[str, int]) -> list[dict[str, Any]]:
    """One JSON item per step: this rank's rows, where to find them and how to size them."""
    items = []
    for step in steps:
        rb = plan.rank_rows(step, rank, world)
        sp = plan.plans[rb.stage]
        idx = sp.index
        items.append({"step": step, "item": json.dumps({
            "step": step, "stage": rb.stage, "rows": rb.rows.tolist(), "real": rb.real.tolist(),
            "global_batch": rb.global_batch, "dataset": idx.dataset[rb.rows].tolist(),
            "position": idx.position[rb.rows].tolist(), "text_row": idx.text_row[rb.rows].tolist(),
            "resolution": sp.stage.config.resolution, **geometry})})
    return items


def step_batches(plan: RunPlan, rank: int, world: int, start: int, stop: int, *, geometry: dict[str, int],
                 routing_pairs: list[str], text_dim: int, data_cpus: float = 0.25, data_tasks: int = 2,
                 prefetch_steps: int = 4) -> Iterator[StepBatch]:
    """Decoded batches of steps [start, stop) for this rank, in step order.

    `geometry`: {"multiple": side rounding, "token_px": pixels per token side}.
    """
    import ray.data

    from compute.ray_adapter import configure_data

    configure_data(preserve_order=True)  # steps leave in plan order, whatever finishes first
    refs = [p.index.datasets for p in plan.plans]
    caches = [p.index.text_caches for p in plan.plans]
    specs = [list(routing_pairs) for _ in plan.plans]
    for lo in range(start, stop, WINDOW_STEPS):
        steps = range(lo, min(stop, lo + WINDOW_STEPS))
        items = plan_items(plan, rank, world, steps, geometry)
        ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            decode_step, fn_kwargs={"refs": refs, "caches": caches, "specs": specs, "text_dim": text_dim},
            batch_size=1, batch_format="numpy", num_cpus=data_cpus, compute=ray.data.TaskPoolStrategy(size=data_tasks))
        for row in ds.iter_batches(batch_size=1, batch_format="numpy", prefetch_batches=prefetch_steps):
            yield _unpack(row)
