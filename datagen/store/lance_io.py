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
from lance.commit import CommitConflictError
from lance.fragment import FragmentMetadata, write_fragments


LINEAGE_KEY = "unimontage.lineage"
# Rows per Lance file: small enough that a shard's worker never buffers much.
MAX_ROWS_PER_FILE = 4096
# A run commits one small fragment per shard. Past this many fragments every read pays for
# them (benchmarks/scale.py: per-row scan and take cost grow with the fragment count), so the
# run compacts them into fragments of COMPACT_TARGET_ROWS rows, in a maintenance commit that
# keeps the rows, their content hash and the lineage.
COMPACT_ABOVE_FRAGMENTS = 16
COMPACT_TARGET_ROWS = 16384


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
    """`URI@7` -> (URI, 7); `URI@reviewed` -> (URI, "reviewed"), a Lance tag; a plain URI -> (URI, None).
    Text only (no storage read): `resolve_ref` turns a tag into the version it names."""
    m = re.match(r"^(.*\.lance)@(\d+|[A-Za-z][\w.-]*)$", ref)
    if m:
        version = m.group(2)
        return m.group(1), int(version) if version.isdigit() else version
    return ref, None


def resolve_ref(ref: str) -> tuple[str, int | None]:
    """`URI@TAG` -> (URI, the version the Lance tag points at now); `URI@7` -> (URI, 7); `URI` -> (URI, None).

    The one place tags are resolved: training pins `collage.lance@reviewed` to a number once
    (`pin_ref`), so a run reads the version that was reviewed even if the tag moves on later.
    """
    uri, version = split_version(ref)
    if not isinstance(version, str):
        return uri, version
    if not exists(uri):
        raise FileNotFoundError(f"no Lance dataset at {normalise_uri(uri)}")
    return uri, _tag_version(lance.dataset(normalise_uri(uri)), version)


def _tag_version(ds: lance.LanceDataset, tag: str) -> int:
    try:
        return ds.tags.get_version(tag)
    except ValueError as exc:  # Lance: "Ref not found error: tag X does not exist"
        raise FileNotFoundError(f"{ds.uri} has no tag {tag!r} (is the version reviewed? "
                                f"`unimontage review {ds.uri}`)") from exc


def pin_ref(ref: str) -> str:
    """`URI[@VERSION|@TAG]` -> `URI@VERSION`: a tag, or no version, becomes the version it is now."""
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


def delete_file(uri: str) -> None:
    fs, path = _fs(uri)
    if fs.get_file_info(path).type == pafs.FileType.File:
        fs.delete_file(path)


def list_dirs(uri: str) -> list[str]:
    fs, path = _fs(uri)
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        return []
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=False))
    return sorted(f"{uri.rstrip('/')}/{i.base_name}" for i in infos if i.type == pafs.FileType.Directory)


def newest_mtime(uri: str) -> float | None:
    """Seconds since the epoch of the newest file under `uri` (None when it holds none)."""
    fs, path = _fs(uri)
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        return None
    times = [i.mtime.timestamp() for i in fs.get_file_info(pafs.FileSelector(path, recursive=True))
             if i.type == pafs.FileType.File and i.mtime is not None]
    return max(times) if times else None


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


class ConcurrentWrite(RuntimeError):
    """Another run committed to the dataset since this run observed it."""


def latest_version(uri: str) -> int:
    """The dataset's latest version, 0 when there is no dataset yet."""
    return lance.dataset(normalise_uri(uri)).version if exists(uri) else 0


def commit(uri: str, schema: pa.Schema, fragments: Iterable[str], lineage: dict[str, Any] | None,
           read_version: int | None = None) -> lance.LanceDataset:
    """One Overwrite transaction holding every fragment of the run (an empty run is a valid version).

    `read_version` is the version the run started from: if anyone committed after it, Lance
    refuses the transaction and this raises `ConcurrentWrite` instead of silently replacing
    the other run's data. The lineage node also goes to a sidecar file, so it survives
    maintenance commits (compaction) and cleanup of old transactions.
    """
    uri = normalise_uri(uri)
    frags = [FragmentMetadata.from_json(f) for f in fragments]
    if read_version is None:
        read_version = latest_version(uri)
    props = {LINEAGE_KEY: json.dumps(lineage, sort_keys=True)} if lineage is not None else {}
    tx = lance.Transaction(read_version, lance.LanceOperation.Overwrite(schema, frags), transaction_properties=props)
    try:
        ds = lance.LanceDataset.commit(uri, tx)
    except CommitConflictError as exc:
        raise ConcurrentWrite(f"{uri} was written by another run after this one started (at version "
                              f"{read_version}); nothing was committed - re-run to build on its version") from exc
    if lineage is not None:
        write_text(sidecar_uri(uri, ds.version), json.dumps(lineage, sort_keys=True))
    return ds


def compact_if_fragmented(uri: str) -> lance.LanceDataset:
    """Merge a version's many small fragments (a new version, same rows); else the version as is."""
    ds = lance.dataset(normalise_uri(uri))
    if len(ds.get_fragments()) > COMPACT_ABOVE_FRAGMENTS:
        # batch_size bounds memory: rows hold encoded images of up to a few MB each
        ds.optimize.compact_files(target_rows_per_fragment=COMPACT_TARGET_ROWS, batch_size=64)
        ds = lance.dataset(normalise_uri(uri))
    return ds


def open_dataset(ref: str) -> lance.LanceDataset:
    """Open `URI` (latest), `URI@VERSION` or `URI@TAG`, with a clear error when it is not a dataset."""
    uri, version = split_version(ref)
    uri = normalise_uri(uri)
    if not exists(uri):
        raise FileNotFoundError(f"no Lance dataset at {uri}")
    if isinstance(version, str):  # a tag: read it from the latest version, then move there (one open)
        latest = lance.dataset(uri)
        return latest.checkout_version(_tag_version(latest, version))
    return lance.dataset(uri, version=version)


# --------------------------------------------------------------------------- lineage records
# Commits that rewrite files but keep every row (compaction, indexes, config): a version made
# by one of these has the lineage of the content version before it.
MAINTENANCE_OPS = {"Rewrite", "CreateIndex", "UpdateConfig", "ReserveFragments", "Project", "DataReplacement"}


def sidecar_uri(uri: str, version: int) -> str:
    return f"{normalise_uri(uri)}/_unimontage/lineage/v{version:09d}.json"


def _tx_lineage(ds: lance.LanceDataset, version: int) -> tuple[dict[str, Any] | None, str | None]:
    """(lineage in that version's transaction, the transaction's operation) - (None, None) if unreadable."""
    try:
        tx = ds.read_transaction(version)
    except Exception:  # cleaned up, or a version older than transaction files
        return None, None
    props = getattr(tx, "transaction_properties", None) or {}
    raw = props.get(LINEAGE_KEY)
    op = type(tx.operation).__name__
    # Operations the Python binding has no class for (fragment id reservation) read as
    # BaseOperation; they are judged by the row count, like an unreadable transaction.
    return (json.loads(raw) if raw else None), (None if op == "BaseOperation" else op)


def read_lineage(ds: lance.LanceDataset) -> dict[str, Any] | None:
    """The lineage node of this version: from its own commit, or - when maintenance (compaction,
    indexing) made it - from the content version it rewrote, with `maintenance` noting how."""
    node, op = _tx_lineage(ds, ds.version)
    if node is not None:
        return node
    sidecar = read_text(sidecar_uri(ds.uri, ds.version))
    if sidecar:
        return json.loads(sidecar)
    steps = [op or "unknown"]
    for v in range(ds.version - 1, 0, -1):
        if steps[-1] not in MAINTENANCE_OPS and steps[-1] != "unknown":
            return None  # data changed outside UniMontage: no lineage describes these rows
        node, op = _tx_lineage(ds, v)
        if node is None:
            raw = read_text(sidecar_uri(ds.uri, v))
            node = json.loads(raw) if raw else None
        if node is not None:
            if node.get("rows") is not None and node["rows"] != ds.count_rows():
                return None
            return node | {"maintenance": {"content_version": v, "operations": steps}}
        steps.append(op or "unknown")
    return None


def fragments_missing(uri: str, fragments: Iterable[str]) -> list[str]:
    """Data files of uncommitted fragments that are gone (or truncated) from storage."""
    fs, root = _fs(normalise_uri(uri))
    missing = []
    for raw in fragments:
        for f in json.loads(raw).get("files", []):
            info = fs.get_file_info(f"{root}/data/{f['path']}")
            size = f.get("file_size_bytes")
            if info.type != pafs.FileType.File or (size and info.size != size):
                missing.append(f["path"])
    return missing
