"""All Lance I/O: uncommitted shard fragments, the one commit per run, reads.

A run writes each shard's rows as uncommitted fragments while it goes (so workers never
hold a whole dataset) and commits all of them in one transaction at the end. The
transaction carries the lineage record, so a dataset version and the record of how it was
made are written atomically and live wherever the dataset lives (local disk or object
storage). Rejects go to `<name>_rejects.lance` beside the dataset.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Iterable

import lance
import pyarrow as pa
import pyarrow.fs as pafs
from lance.fragment import FragmentMetadata, write_fragments


LINEAGE_KEY = "unimontage.lineage"
# Rows per Lance file: small enough that a shard's worker never buffers much.
MAX_ROWS_PER_FILE = 4096


# --------------------------------------------------------------------------- URIs
def normalise_uri(uri: str) -> str:
    """Absolute local path or an object-store URI, without a trailing slash."""
    uri = str(uri).rstrip("/")
    if "://" in uri:
        return uri
    return os.path.abspath(os.path.expanduser(uri))


def rejects_uri(uri: str) -> str:
    """`X.lance` -> `X_rejects.lance` beside it."""
    uri = normalise_uri(uri)
    base = uri[: -len(".lance")] if uri.endswith(".lance") else uri
    return f"{base}_rejects.lance"


def flags_uri(uri: str) -> str:
    """`X.lance` -> `X_flags.lance` beside it: sample ids a reviewer flagged, per version."""
    uri = normalise_uri(uri)
    base = uri[: -len(".lance")] if uri.endswith(".lance") else uri
    return f"{base}_flags.lance"


def dataset_name(uri: str) -> str:
    base = normalise_uri(uri).rsplit("/", 1)[-1]
    return base[: -len(".lance")] if base.endswith(".lance") else base


def split_version(ref: str) -> tuple[str, int | str | None]:
    """`URI@7` -> (URI, 7); `URI@reviewed` -> (URI, "reviewed"), a Lance tag; a plain URI -> (URI, None)."""
    m = re.match(r"^(.*\.lance)@(\d+|[A-Za-z_][\w.-]*)$", ref)
    if m:
        version = m.group(2)
        return m.group(1), int(version) if version.isdigit() else version
    return ref, None


def resolve_ref(ref: str) -> str:
    """`URI[@VERSION|@TAG]` -> `URI@VERSION`: a tag (e.g. `reviewed`) or no version -> the version it is now."""
    return f"{normalise_uri(split_version(ref)[0])}@{open_dataset(ref).version}"


def _fs(uri: str) -> tuple[pafs.FileSystem, str]:
    return pafs.FileSystem.from_uri(uri if "://" in uri else normalise_uri(uri))


def exists(uri: str) -> bool:
    fs, path = _fs(normalise_uri(uri))
    return fs.get_file_info(path + "/_versions").type == pafs.FileType.Directory


def write_text(uri: str, text: str) -> None:
    fs, path = _fs(uri)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    tmp = path + ".tmp"
    with fs.open_output_stream(tmp) as f:
        f.write(text.encode())
    fs.move(tmp, path)  # atomic on local disk: a marker is either whole or absent


def read_text(uri: str) -> str | None:
    fs, path = _fs(uri)
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        return f.read().decode()


def list_files(uri: str, suffix: str) -> list[str]:
    fs, path = _fs(uri)
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        return []
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=False))
    prefix = uri.rstrip("/")
    return sorted(f"{prefix}/{i.base_name}" for i in infos if i.base_name.endswith(suffix))


def delete_dir(uri: str) -> None:
    fs, path = _fs(uri)
    if fs.get_file_info(path).type == pafs.FileType.Directory:
        fs.delete_dir(path)


# --------------------------------------------------------------------------- write / commit
def write_uncommitted(table: pa.Table, uri: str, schema: pa.Schema) -> list[str]:
    """Write rows as data files under `uri` without committing; returns fragment JSON."""
    if table.num_rows == 0:
        return []
    frags = write_fragments(table, normalise_uri(uri), schema=schema, max_rows_per_file=MAX_ROWS_PER_FILE)
    return [json.dumps(f.to_json()) for f in frags]


def commit(uri: str, schema: pa.Schema, fragments: Iterable[str], lineage: dict[str, Any] | None) -> lance.LanceDataset:
    """One Overwrite transaction holding every fragment of the run (an empty run is a valid version)."""
    uri = normalise_uri(uri)
    frags = [FragmentMetadata.from_json(f) for f in fragments]
    read_version = lance.dataset(uri).version if exists(uri) else 0
    props = {LINEAGE_KEY: json.dumps(lineage, sort_keys=True)} if lineage is not None else {}
    tx = lance.Transaction(read_version, lance.LanceOperation.Overwrite(schema, frags), transaction_properties=props)
    return lance.LanceDataset.commit(uri, tx)


def open_dataset(ref: str) -> lance.LanceDataset:
    """Open `URI` (latest), `URI@VERSION` or `URI@TAG`, with a clear error when it is not a dataset."""
    uri, version = split_version(ref)
    uri = normalise_uri(uri)
    if not exists(uri):
        raise FileNotFoundError(f"no Lance dataset at {uri}")
    return lance.dataset(uri, version=version)  # Lance resolves a tag name to its version


def read_lineage(ds: lance.LanceDataset) -> dict[str, Any] | None:
    tx = ds.read_transaction(ds.version)
    props = getattr(tx, "transaction_properties", None) or {}
    raw = props.get(LINEAGE_KEY)
    return json.loads(raw) if raw else None
