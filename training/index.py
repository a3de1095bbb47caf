"""The row index: what the sampler needs to know about every trainable row, and nothing more.

Built once per run with Ray Data `read_lance` over each dataset pinned to its version
(fragments are read in parallel; image bytes are dropped inside the read tasks, only a
few small columns come back). Each row keeps (dataset, position, task, weight, n_in,
n_out, bucket); `position` is the row's offset in that version, so a Lance `take` at the
same version returns exactly that row, whichever machine asks.

Rows the model cannot train on are left out and counted by reason (`skipped`): never a
crash of the run, never a silent loss.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datagen.store import lance_io
from training.buckets import Bucket, assign_buckets

INDEX_COLUMNS = ["task", "weight", "inputs", "outputs"]


@dataclass
class RowIndex:
    datasets: list[str]  # pinned refs "URI@VERSION"; `dataset` below indexes this list
    tasks: list[str]  # sorted task vocabulary; `task` below indexes this list
    buckets: list[Bucket]
    dataset: np.ndarray  # (n,) int16
    position: np.ndarray  # (n,) int64 row offset in the pinned version
    task: np.ndarray  # (n,) int16
    weight: np.ndarray  # (n,) float32, the record's `weight` (null -> 1)
    n_in: np.ndarray  # (n,) int8
    n_out: np.ndarray  # (n,) int8
    bucket: np.ndarray  # (n,) int16
    rows_per_dataset: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> rows left out

    def __len__(self) -> int:
        return int(self.position.shape[0])

    def fingerprint(self) -> str:
        """Changes when any row's place, task, weight, shape or bucket changes."""
        h = hashlib.sha256()
        h.update("\n".join(self.datasets + ["|"] + self.tasks + ["|"] + [str(b) for b in self.buckets]).encode())
        for arr in (self.dataset, self.position, self.task, self.weight, self.n_in, self.n_out, self.bucket):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()

    def summary(self) -> dict:
        tasks = Counter(self.tasks[t] for t in self.task.tolist())
        groups = Counter(f"{i}in-{o}out-{self.buckets[b]}" for i, o, b in
                         zip(self.n_in.tolist(), self.n_out.tolist(), self.bucket.tolist()))
        return {"rows": len(self), "rows_per_dataset": self.rows_per_dataset, "tasks": dict(sorted(tasks.items())),
                "groups": dict(sorted(groups.items())), "skipped": dict(sorted(self.skipped.items()))}


# --------------------------------------------------------------------------- pinning
def pin(refs: list[str]) -> list[str]:
    """`URI[@VERSION]` -> `URI@VERSION` (the latest version when none is given); errors name the URI."""
    if not refs:
        raise ValueError("no datasets: pass at least one --dataset URI[@VERSION]")
    pinned = []
    for ref in refs:
        uri, version = lance_io.split_version(ref)
        try:
            ds = lance_io.open_dataset(ref)  # FileNotFoundError names a missing dataset
        except ValueError as exc:  # Lance's way of saying the version does not exist
            raise FileNotFoundError(f"{uri} has no version {version}: {exc}") from None
        if version is not None and ds.version != version:
            raise FileNotFoundError(f"{uri} has no version {version}")
        pinned.append(f"{lance_io.normalise_uri(uri)}@{ds.version}")
    if len(set(pinned)) != len(pinned):
        raise ValueError(f"the same dataset version is listed twice: {pinned}")
    return pinned


# --------------------------------------------------------------------------- per-block shapes
def _first_sizes(images: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(count, width, height) of the first image of each row's list; 0 where the list is empty."""
    arr = images.combine_chunks() if isinstance(images, pa.ChunkedArray) else images
    counts = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    offsets = arr.offsets.to_numpy()[:-1] if len(arr) else np.zeros(0, np.int64)
    values = arr.values
    widths = values.field("width").to_numpy(zero_copy_only=False) if len(values) else np.zeros(0)
    heights = values.field("height").to_numpy(zero_copy_only=False) if len(values) else np.zeros(0)
    has = counts > 0
    w = np.zeros(len(arr), np.int64)
    h = np.zeros(len(arr), np.int64)
    w[has] = widths[offsets[has]]
    h[has] = heights[offsets[has]]
    return counts, w, h


def row_shapes(batch: pa.Table) -> pa.Table:
    """Ray Data map_batches fn: drop image bytes, keep what the sampler needs."""
    n_in, _, _ = _first_sizes(batch.column("inputs"))
    n_out, w, h = _first_sizes(batch.column("outputs"))
    weight = pc.fill_null(batch.column("weight"), 1.0).to_numpy().astype(np.float32)
    return pa.table({"_rowaddr": batch.column("_rowaddr"), "task": batch.column("task"), "weight": weight,
                     "n_in": n_in, "n_out": n_out, "width": w, "height": h})


def read_shapes(ref: str) -> pa.Table:
    """One pinned dataset's rows, in row-address order (= Lance `take` position order)."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # one small scan: progress logs would only be noise
    ctx.print_on_execution_start = False
    uri, version = lance_io.split_version(ref)
    fragments = len(lance_io.open_dataset(ref).get_fragments())
    # One read task per fragment: the work is one pass over the bytes, splitting it finer
    # only adds task overhead.
    ds = ray.data.read_lance(uri, version=version, columns=INDEX_COLUMNS, override_num_blocks=max(1, fragments),
                             scanner_options={"with_row_address": True})
    parts = list(ds.map_batches(row_shapes, batch_format="pyarrow").iter_batches(batch_format="pyarrow",
                                                                                  batch_size=None))
    if not parts:
        return pa.table({"_rowaddr": pa.array([], pa.uint64())})
    table = pa.concat_tables(parts)
    return table.sort_by("_rowaddr")


# --------------------------------------------------------------------------- the index
def build_index(refs: list[str], buckets: list[Bucket], *, max_inputs: int, max_outputs: int,
                drawable_zero_weight: bool = False) -> RowIndex:
    """Index every row of the pinned datasets; rows the model cannot take are counted in `skipped`.

    `drawable_zero_weight`: keep weight-0 rows (when weights scale the loss, not the draw).
    """
    tables = [read_shapes(ref) for ref in refs]
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("dataset", "position", "task", "weight", "n_in", "n_out", "w", "h")}
    task_names: list[np.ndarray] = []
    skipped: Counter = Counter()
    rows_per_dataset = {}
    for d, (ref, table) in enumerate(zip(refs, tables)):
        n = table.num_rows
        if n == 0:
            rows_per_dataset[ref] = 0
            continue
        # The scan returns live rows only, so the rank of a row address is its offset.
        position = np.arange(n, dtype=np.int64)
        tasks = np.asarray(table.column("task").to_pylist(), dtype=object)
        weight = table.column("weight").to_numpy()
        n_in = table.column("n_in").to_numpy()
        n_out = table.column("n_out").to_numpy()
        w, h = table.column("width").to_numpy(), table.column("height").to_numpy()
        reasons = np.full(n, "", dtype=object)
        reasons[~np.isfinite(weight) | (weight < 0)] = "bad_weight"
        if not drawable_zero_weight:
            reasons[(reasons == "") & (weight == 0)] = "zero_weight"
        reasons[(reasons == "") & (n_out == 0)] = "no_outputs"
        reasons[(reasons == "") & (n_out > max_outputs)] = "too_many_outputs"
        reasons[(reasons == "") & (n_in > max_inputs)] = "too_many_inputs"
        reasons[(reasons == "") & ((w < 1) | (h < 1))] = "bad_image_size"
        skipped.update(r for r in reasons.tolist() if r)
        keep = reasons == ""
        rows_per_dataset[ref] = int(keep.sum())
        cols["dataset"].append(np.full(int(keep.sum()), d, np.int16))
        cols["position"].append(position[keep])
        task_names.append(tasks[keep])
        for key, arr in (("weight", weight), ("n_in", n_in), ("n_out", n_out), ("w", w), ("h", h)):
            cols[key].append(arr[keep])
    names = np.concatenate(task_names) if task_names else np.zeros(0, dtype=object)
    vocab = sorted(set(names.tolist()))
    lookup = {t: i for i, t in enumerate(vocab)}

    def cat(key: str, dtype) -> np.ndarray:
        return np.concatenate(cols[key]).astype(dtype) if cols[key] else np.zeros(0, dtype)

    widths, heights = cat("w", np.int64), cat("h", np.int64)
    return RowIndex(
        datasets=list(refs), tasks=vocab, buckets=list(buckets),
        dataset=cat("dataset", np.int16), position=cat("position", np.int64),
        task=np.array([lookup[t] for t in names.tolist()], dtype=np.int16),
        weight=cat("weight", np.float32), n_in=cat("n_in", np.int8), n_out=cat("n_out", np.int8),
        bucket=assign_buckets(widths, heights, buckets) if len(widths) else np.zeros(0, np.int16),
        rows_per_dataset=rows_per_dataset, skipped=dict(skipped),
    )
