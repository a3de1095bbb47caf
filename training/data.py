"""Lance -> Ray Data -> decode -> aspect-ratio buckets -> one batch per step.

Design (determinism first): the rows of each step come from `StepPlan` (a pure function
of the step), never from Ray's scheduling. Each rank turns its own slice of the next
steps into a small Ray Dataset (one item per step: which rows, which bucket), and Ray Data
runs `decode_step` on it: a Lance `take` of those rows at the pinned version, image
decode, fit to the bucket. `preserve_order` keeps steps in order while several decode
tasks run ahead of the loop (`prefetch_steps`), on CPUs the Train workers did not take.

Why not `streaming_split` of one big dataset: it hands blocks to whichever rank asks
first, so which sample a rank sees would depend on timing, and a resumed run could not
see the batches the lost one would have.

A row that fails to decode does not stop the run: it stays in the batch with `ok=False`
(loss weight 0, so every rank still runs the same collective ops) and is reported with
its sample id and reason.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from training.buckets import Bucket, fit_to_bucket
from training.mixing import StepPlan

# Steps per Ray Dataset: bounds the plan held in memory; a window boundary costs one
# step of decode latency, i.e. nothing at this length.
WINDOW_STEPS = 512
TAKE_COLUMNS = ["sample_id", "instruction", "inputs", "outputs"]


@dataclass
class StepBatch:
    step: int
    rows: np.ndarray  # (b,) rows of the RowIndex
    frames: np.ndarray  # (b, n_in + n_out, H, W, 3) uint8: inputs first, then outputs
    n_in: int
    ok: np.ndarray  # (b,) bool: False where the row failed to decode
    instructions: list[str]
    sample_ids: list[str]
    errors: list[dict[str, str]]
    decode_seconds: float

    @property
    def inputs(self) -> np.ndarray:
        return self.frames[:, :self.n_in]

    @property
    def outputs(self) -> np.ndarray:
        return self.frames[:, self.n_in:]


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
        table = _open(refs[d]).take(wanted.tolist(), columns=TAKE_COLUMNS)
        rows = table.to_pylist()
        by_pos = dict(zip(wanted.tolist(), rows))
        for k in where.tolist():
            out[k] = by_pos[int(position[k])]
    return out  # type: ignore[return-value]


def decode_sample(row: dict[str, Any], n_in: int, n_out: int, bucket: Bucket) -> np.ndarray:
    """(n_in + n_out, H, W, 3) uint8 of one stored row; raises ValueError when it cannot."""
    from datagen.images import decode

    pics = list(row["inputs"] or []) + list(row["outputs"] or [])
    if len(row["inputs"] or []) != n_in or len(row["outputs"] or []) != n_out:
        raise ValueError(f"row has {len(row['inputs'] or [])} inputs / {len(row['outputs'] or [])} outputs, "
                         f"index says {n_in} / {n_out}")
    return np.stack([fit_to_bucket(decode(p["data"]), bucket, p.get("role") or "") for p in pics])


def decode_step(batch: dict[str, np.ndarray], refs: list[str]) -> dict[str, list]:
    """Ray Data map_batches fn: plan items (one per step) -> decoded, bucketed frames."""
    out: dict[str, list] = {k: [] for k in ("step", "rows", "frames", "shape", "ok", "instructions",
                                            "sample_ids", "errors", "decode_s")}
    for i in range(len(batch["step"])):
        t0 = time.perf_counter()
        item = json.loads(batch["item"][i])
        bucket = Bucket(item["height"], item["width"])
        n_in, n_out = item["n_in"], item["n_out"]
        rows = read_rows(refs, np.asarray(item["dataset"]), np.asarray(item["position"], dtype=np.int64))
        frames = np.zeros((len(rows), n_in + n_out, bucket.height, bucket.width, 3), np.uint8)
        ok = np.ones(len(rows), bool)
        errors = []
        for k, row in enumerate(rows):
            try:
                frames[k] = decode_sample(row, n_in, n_out, bucket)
            except (ValueError, KeyError, TypeError) as exc:
                ok[k] = False
                errors.append({"sample_id": row.get("sample_id", ""), "reason": "decode_error",
                               "detail": f"{type(exc).__name__}: {exc}"})
        out["step"].append(item["step"])
        out["rows"].append(json.dumps(item["rows"]))
        out["frames"].append(frames.tobytes())
        out["shape"].append(json.dumps(list(frames.shape)))
        out["ok"].append(ok.tobytes())
        out["instructions"].append(json.dumps([r.get("instruction") or "" for r in rows]))
        out["sample_ids"].append(json.dumps([r.get("sample_id") or "" for r in rows]))
        out["errors"].append(json.dumps(errors))
        out["decode_s"].append(time.perf_counter() - t0)
    return out


def _unpack(row: dict[str, np.ndarray], n_in: dict[int, int]) -> StepBatch:
    step = int(row["step"][0])
    shape = json.loads(row["shape"][0])
    return StepBatch(
        step=step,
        rows=np.asarray(json.loads(row["rows"][0]), dtype=np.int64),
        frames=np.frombuffer(row["frames"][0], np.uint8).reshape(shape).copy(),  # writable for torch
        n_in=n_in[step],
        ok=np.frombuffer(row["ok"][0], bool).copy(),
        instructions=json.loads(row["instructions"][0]),
        sample_ids=json.loads(row["sample_ids"][0]),
        errors=json.loads(row["errors"][0]),
        decode_seconds=float(row["decode_s"][0]),
    )


# --------------------------------------------------------------------------- the per-rank stream
def plan_items(plan: StepPlan, rank: int, world: int, steps: range) -> list[dict[str, Any]]:
    """One JSON item per step: this rank's rows and where to find them."""
    idx = plan.index
    items = []
    for step in steps:
        rows, (n_in, n_out, b) = plan.rank_rows(step, rank, world)
        bucket = idx.buckets[b]
        items.append({"step": step, "item": json.dumps({
            "step": step, "rows": rows.tolist(), "dataset": idx.dataset[rows].tolist(),
            "position": idx.position[rows].tolist(), "n_in": n_in, "n_out": n_out,
            "height": bucket.height, "width": bucket.width})})
    return items


def step_batches(plan: StepPlan, rank: int, world: int, start: int, stop: int, *, data_cpus: float = 0.25,
                 data_tasks: int = 2, prefetch_steps: int = 4) -> Iterator[StepBatch]:
    """Decoded batches of steps [start, stop) for this rank, in step order."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # steps leave in plan order, whatever finishes first
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    for lo in range(start, stop, WINDOW_STEPS):
        steps = range(lo, min(stop, lo + WINDOW_STEPS))
        items = plan_items(plan, rank, world, steps)
        n_in = {it["step"]: json.loads(it["item"])["n_in"] for it in items}
        ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            decode_step, fn_kwargs={"refs": plan.index.datasets}, batch_size=1, batch_format="numpy",
            num_cpus=data_cpus, compute=ray.data.TaskPoolStrategy(size=data_tasks))
        for row in ds.iter_batches(batch_size=1, batch_format="numpy", prefetch_batches=prefetch_steps):
            yield _unpack(row, n_in)
