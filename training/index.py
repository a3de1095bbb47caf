"""The row index: what the sampler needs to know about every trainable row, and nothing more.

Built once per run with Ray Data `read_lance` over each dataset pinned to its version
(fragments are read in parallel; image bytes are dropped inside the read tasks, only a
few small columns come back). Each row keeps (dataset, position, task, weight, n_in,
n_out, image tokens in and out at the stage's resolution, its cached text); `position` is
the row's offset in that version, so a Lance `take` at the same version returns exactly
that row, whichever machine asks.

Rows a stage does not train on are left out and counted by reason (`skipped`): rows the
model cannot take, rows the stage's `where` filter or the review's flags leave out. Never a
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
from training.config import TrainConfig
from training.selection import flagged_ids, parse_where, where_reasons
from training.sizes import fit_sizes

INDEX_COLUMNS = ["sample_id", "task", "weight", "instruction", "scores", "inputs", "outputs"]


@dataclass(frozen=True)
class Geometry:
    """How images become tokens: sides rounded to `multiple` pixels, one token per `token_px`^2."""

    multiple: int
    token_px: int
    max_inputs: int
    max_outputs: int


@dataclass
class RowIndex:
    datasets: list[str]  # pinned refs "URI@VERSION"; `dataset` below indexes this list
    tasks: list[str]  # sorted task vocabulary; `task` below indexes this list
    dataset: np.ndarray  # (n,) int16
    position: np.ndarray  # (n,) int64 row offset in the pinned version
    task: np.ndarray  # (n,) int16
    weight: np.ndarray  # (n,) float32, the record's `weight` (null -> 1)
    n_in: np.ndarray  # (n,) int8
    n_out: np.ndarray  # (n,) int8
    tokens_in: np.ndarray  # (n,) int32 image tokens of all inputs at the stage's resolution
    tokens_out: np.ndarray  # (n,) int32 ... of all outputs
    text_row: np.ndarray  # (n,) int64 row of the instruction in its dataset's text cache (-1: none)
    text_caches: list[str] = field(default_factory=list)  # per dataset: pinned text-cache ref, "" = none
    rows_per_dataset: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> rows left out

    def __len__(self) -> int:
        return int(self.position.shape[0])

    def fingerprint(self) -> str:
        """Changes when any row's place, task, weight, shape, tokens or text changes. A text
        cache counts by its location: its rows are append-only, so a later version (another
        run added texts) still holds this run's rows at the same places."""
        caches = [lance_io.split_version(c)[0] if c else "" for c in self.text_caches]
        h = hashlib.sha256()
        h.update("\n".join(self.datasets + ["|"] + self.tasks + ["|"] + caches).encode())
        for arr in (self.dataset, self.position, self.task, self.weight, self.n_in, self.n_out, self.tokens_in,
                    self.tokens_out, self.text_row):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()

    def summary(self) -> dict:
        tasks = Counter(self.tasks[t] for t in self.task.tolist())
        groups = Counter(f"{i}in-{o}out" for i, o in zip(self.n_in.tolist(), self.n_out.tolist()))
        tokens = (self.tokens_in + self.tokens_out).astype(np.int64)
        return {"rows": len(self), "rows_per_dataset": self.rows_per_dataset, "tasks": dict(sorted(tasks.items())),
                "groups": dict(sorted(groups.items())), "skipped": dict(sorted(self.skipped.items())),
                "tokens": {"min": int(tokens.min()), "mean": round(float(tokens.mean()), 1), "max": int(tokens.max())}
                if len(tokens) else {}}


# --------------------------------------------------------------------------- pinning
def pin(refs: list[str]) -> list[str]:
    """`URI[@VERSION|@TAG]` -> `URI@VERSION` (the latest version when none is given); errors name the URI."""
    if not refs:
        raise ValueError("no datasets: pass at least one --dataset URI[@VERSION]")
    pinned = []
    for ref in refs:
        uri, version = lance_io.split_version(ref)
        try:
            pinned.append(lance_io.pin_ref(ref))  # FileNotFoundError names a missing dataset
        except ValueError as exc:  # Lance's way of saying the version or tag does not exist
            raise FileNotFoundError(f"{uri} has no version {version}: {exc}") from None
    if len(set(pinned)) != len(pinned):
        raise ValueError(f"the same dataset version is listed twice: {pinned}")
    return pinned


# --------------------------------------------------------------------------- per-row shapes
def _image_sizes(images: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, pa.Array, pa.Array]:
    """(count per row, widths as list<int64>, heights as list<int64>) of a list<image> column."""
    arr = images.combine_chunks() if isinstance(images, pa.ChunkedArray) else images
    counts = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
    flat = pc.list_flatten(arr)
    widths = pc.cast(pc.fill_null(flat.field("width"), 0), pa.int64()) if len(flat) else pa.array([], pa.int64())
    heights = pc.cast(pc.fill_null(flat.field("height"), 0), pa.int64()) if len(flat) else pa.array([], pa.int64())
    return counts, pa.ListArray.from_arrays(offsets, widths), pa.ListArray.from_arrays(offsets, heights)


def row_shapes(batch: pa.Table) -> pa.Table:
    """Ray Data map_batches fn: drop image bytes, keep what the index needs."""
    n_in, in_w, in_h = _image_sizes(batch.column("inputs"))
    n_out, out_w, out_h = _image_sizes(batch.column("outputs"))
    weight = pc.fill_null(batch.column("weight"), 1.0).to_numpy().astype(np.float32)
    return pa.table({"_rowaddr": batch.column("_rowaddr"), "sample_id": batch.column("sample_id"),
                     "task": batch.column("task"), "weight": weight, "instruction": batch.column("instruction"),
                     "scores": batch.column("scores"), "n_in": n_in, "n_out": n_out, "in_w": in_w, "in_h": in_h,
                     "out_w": out_w, "out_h": out_h})


def read_shapes(ref: str) -> pa.Table:
    """One pinned dataset's rows, in row-address order (= Lance `take` position order)."""
    import ray.data

    from compute.ray_adapter import configure_data

    configure_data()  # one small scan: progress logs would only be noise
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
    return pa.concat_tables(parts).sort_by("_rowaddr")


def row_tokens(counts: np.ndarray, widths: pa.Array, heights: pa.Array, resolution: int,
               geo: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """(tokens per row, ok per row): image tokens of every image of each row at its fitted size."""
    w = pc.list_flatten(widths).to_numpy(zero_copy_only=False).astype(np.int64)
    h = pc.list_flatten(heights).to_numpy(zero_copy_only=False).astype(np.int64)
    row = np.repeat(np.arange(len(counts)), counts)
    bad = (w < 1) | (h < 1)
    ok = np.bincount(row[bad], minlength=len(counts)) == 0
    fh, fw = fit_sizes(np.maximum(h, 1), np.maximum(w, 1), resolution, geo.multiple)
    tokens = (fh // geo.token_px) * (fw // geo.token_px)
    return np.bincount(row, weights=tokens, minlength=len(counts)).astype(np.int64), ok


# --------------------------------------------------------------------------- the index
def build_index(refs: list[str], cfg: TrainConfig, geo: Geometry, shapes: dict[str, pa.Table],
                texts: dict[str, tuple[str, np.ndarray]] | None = None) -> RowIndex:
    """Index the rows a stage trains on; the others are counted in `skipped`.

    `cfg` is the stage's config (resolution, batch_tokens, where, drop_flagged, weight_mode);
    `shapes` maps each ref to its `read_shapes` table; `texts` maps each ref to its text cache
    (pinned ref, cache row of every stored row).
    """
    clauses = parse_where(cfg.where)
    max_tokens = cfg.batch_tokens or None
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("dataset", "position", "weight", "n_in", "n_out",
                                                          "tokens_in", "tokens_out", "text_row")}
    task_names: list[np.ndarray] = []
    skipped: Counter = Counter()
    rows_per_dataset = {}
    for d, ref in enumerate(refs):
        table = shapes[ref]
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
        tok_in, ok_in = row_tokens(n_in, table.column("in_w").combine_chunks(), table.column("in_h").combine_chunks(),
                                   cfg.resolution, geo)
        tok_out, ok_out = row_tokens(n_out, table.column("out_w").combine_chunks(),
                                     table.column("out_h").combine_chunks(), cfg.resolution, geo)
        reasons = np.full(n, "", dtype=object)
        reasons[~np.isfinite(weight) | (weight < 0)] = "bad_weight"
        if cfg.weight_mode == "sample":  # weight 0 = never drawn; in "loss" mode it scales the loss instead
            reasons[(reasons == "") & (weight == 0)] = "zero_weight"
        reasons[(reasons == "") & (n_out == 0)] = "no_outputs"
        reasons[(reasons == "") & (n_out > geo.max_outputs)] = "too_many_outputs"
        reasons[(reasons == "") & (n_in > geo.max_inputs)] = "too_many_inputs"
        reasons[(reasons == "") & ~(ok_in & ok_out)] = "bad_image_size"
        if max_tokens:
            reasons[(reasons == "") & (tok_in + tok_out > max_tokens)] = "too_many_tokens"
        open_rows = reasons == ""
        if clauses:
            scores = table.column("scores").to_pylist()
            filtered = where_reasons(scores, clauses, cfg.where_missing)
            reasons[open_rows] = filtered[open_rows]
        if cfg.drop_flagged:
            flagged = flagged_ids(ref)
            ids = np.asarray(table.column("sample_id").to_pylist(), dtype=object)
            hit = (reasons == "") & np.array([i in flagged for i in ids.tolist()], dtype=bool)
            reasons[hit] = "flagged"
        skipped.update(r for r in reasons.tolist() if r)
        keep = reasons == ""
        rows_per_dataset[ref] = int(keep.sum())
        text_rows = texts[ref][1] if texts and ref in texts else np.full(n, -1, np.int64)
        cols["dataset"].append(np.full(int(keep.sum()), d, np.int16))
        task_names.append(tasks[keep])
        for key, arr in (("position", position), ("weight", weight), ("n_in", n_in), ("n_out", n_out),
                         ("tokens_in", tok_in), ("tokens_out", tok_out), ("text_row", text_rows)):
            cols[key].append(arr[keep])
    names = np.concatenate(task_names) if task_names else np.zeros(0, dtype=object)
    vocab = sorted(set(names.tolist()))
    lookup = {t: i for i, t in enumerate(vocab)}

    def cat(key: str, dtype) -> np.ndarray:
        return np.concatenate(cols[key]).astype(dtype) if cols[key] else np.zeros(0, dtype)

    return RowIndex(
        datasets=list(refs), tasks=vocab, dataset=cat("dataset", np.int16), position=cat("position", np.int64),
        task=np.array([lookup[t] for t in names.tolist()], dtype=np.int16), weight=cat("weight", np.float32),
        n_in=cat("n_in", np.int8), n_out=cat("n_out", np.int8), tokens_in=cat("tokens_in", np.int32),
        tokens_out=cat("tokens_out", np.int32), text_row=cat("text_row", np.int64),
        text_caches=[(texts or {}).get(ref, ("", None))[0] for ref in refs],
        rows_per_dataset=rows_per_dataset, skipped=dict(skipped),
    )
