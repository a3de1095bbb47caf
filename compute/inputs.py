"""Local views of an item's input, made by the harness so products never touch object stores.

- "file" inputs: a local path is used as it is; an object-store URI is copied to a scratch
  file first, after its size is checked against the product's cap (and the copy stops at
  the cap too, should the object grow), and deleted when the item function returns.
- "row" inputs (`URI@VERSION#row`): the shard's rows are read with one `take` per dataset.

Failures are the input's own: they come back as `InputUnavailable` with a stable reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator

import pyarrow.fs as pafs

from datagen.product import INPUT_FILE, INPUT_ROW, Item
from datagen.rejection import Rejected
from datagen.store import lance_io

COPY_CHUNK = 1 << 20


class InputUnavailable(Rejected):
    """An input the harness could not make local: becomes the item's reject row."""


def is_remote(source: str) -> bool:
    return "://" in source and not source.startswith("file://")


@contextlib.contextmanager
def local_file(source: str, max_bytes: int) -> Iterator[str]:
    """A local path holding `source` for the duration of the block."""
    if not is_remote(source):
        yield source[len("file://"):] if source.startswith("file://") else source
        return
    try:
        fs, path = pafs.FileSystem.from_uri(source)
        info = fs.get_file_info(path)
    except Exception as exc:  # bad URI, unreachable store, missing credentials
        raise InputUnavailable("unreadable_input", f"{type(exc).__name__}: {exc}") from exc
    if info.type != pafs.FileType.File:
        raise InputUnavailable("unreadable_input", f"{source} is not a file")
    if info.size is not None and info.size > max_bytes:
        raise InputUnavailable("input_too_large", f"{info.size:,} bytes exceeds the cap of {max_bytes:,}")
    scratch = tempfile.mkdtemp(prefix="unimontage-input-")
    try:
        local = os.path.join(scratch, Path(path).name or "input")
        copied = 0
        try:
            with fs.open_input_stream(path) as fin, open(local, "wb") as fout:
                while chunk := fin.read(COPY_CHUNK):
                    copied += len(chunk)
                    if copied > max_bytes:
                        raise InputUnavailable("input_too_large", f"more than {max_bytes:,} bytes")
                    fout.write(chunk)
        except InputUnavailable:
            raise
        except Exception as exc:
            raise InputUnavailable("unreadable_input", f"{type(exc).__name__}: {exc}") from exc
        yield local
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def split_row_ref(source: str) -> tuple[str, int]:
    """`URI@VERSION#row` -> (`URI@VERSION`, row)."""
    ref, sep, row = source.rpartition("#")
    if not sep or not row.isdigit():
        raise InputUnavailable("bad_row_reference", f"{source!r} is not URI@VERSION#row")
    return ref, int(row)


def read_rows(items: list[Item]) -> dict[int, dict[str, Any] | InputUnavailable]:
    """The stored row of every "row" item, by item index; one `take` per dataset version."""
    wanted: dict[str, list[tuple[int, int]]] = defaultdict(list)
    out: dict[int, dict[str, Any] | InputUnavailable] = {}
    for it in items:
        if it.input != INPUT_ROW:
            continue
        try:
            ref, row = split_row_ref(it.source)
        except InputUnavailable as exc:
            out[it.index] = exc
            continue
        wanted[ref].append((it.index, row))
    for ref, pairs in wanted.items():
        try:
            ds = lance_io.open_dataset(ref)
        except Exception as exc:  # a version that vanished
            for index, _ in pairs:
                out[index] = InputUnavailable("unreadable_row", f"{type(exc).__name__}: {exc}")
            continue
        try:
            rows = ds.take([r for _, r in pairs]).to_pylist()
        except Exception:  # one bad row (out of range, unreadable) must not take its neighbours along
            rows = [_take_one(ds, r) for _, r in pairs]
        for (index, _), row in zip(pairs, rows):
            out[index] = row
    return out


def _take_one(ds, row: int) -> dict[str, Any] | InputUnavailable:
    try:
        return ds.take([row]).to_pylist()[0]
    except Exception as exc:
        return InputUnavailable("unreadable_row", f"row {row}: {type(exc).__name__}: {exc}")


def needs_file(item: Item) -> bool:
    return item.input == INPUT_FILE
