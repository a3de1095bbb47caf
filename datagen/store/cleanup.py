"""Tidying a dataset's storage: staging of runs that never committed, and orphan data files.

A run writes data files before it commits; a run that is killed and never re-run leaves
them (and its shard markers) behind. Committed versions are never touched: every version
stays readable, so lineage refs `URI@VERSION` keep working.

Automatic policy: after each commit, staging untouched for `STAGING_TTL_S` is dropped.
`unimontage clean URI` drops all abandoned staging and deletes orphan data files, refusing
while another run holds the dataset's lease (its files are not orphans yet).
"""

from __future__ import annotations

import time
from typing import Any

import lance
import pyarrow.fs as pafs

from datagen.store import lance_io
from datagen.store.lease import STALE_AFTER_S, DatasetBusy, Lease, _alive

STAGING_TTL_S = 7 * 24 * 3600.0


def clean_abandoned_staging(out: str, older_than_s: float = STAGING_TTL_S) -> list[str]:
    """Delete staging folders of runs that saw no progress for `older_than_s`."""
    removed = []
    now = time.time()
    for folder in lance_io.list_dirs(f"{lance_io.normalise_uri(out)}/_unimontage/staging"):
        newest = lance_io.newest_mtime(folder)
        if newest is None or now - newest >= older_than_s:
            lance_io.delete_dir(folder)
            removed.append(folder)
    return removed


def _referenced(uri: str) -> set[str]:
    """Data file names referenced by any version of the dataset."""
    ds = lance.dataset(uri)
    names: set[str] = set()
    for v in ds.versions():
        for frag in lance.dataset(uri, version=v["version"]).get_fragments():
            names.update(f["path"] for f in frag.metadata.to_json().get("files", []))
    return names


def delete_orphans(uri: str, older_than_s: float = 0.0) -> dict[str, int]:
    """Delete data files no version references (and older than `older_than_s`)."""
    uri = lance_io.normalise_uri(uri)
    if not lance_io.exists(uri):
        return {"files": 0, "bytes": 0}
    keep = _referenced(uri)
    fs, root = pafs.FileSystem.from_uri(uri if "://" in uri else uri)
    infos = fs.get_file_info(pafs.FileSelector(f"{root}/data", allow_not_found=True))
    now, files, size = time.time(), 0, 0
    for info in infos:
        old = info.mtime is None or now - info.mtime.timestamp() >= older_than_s
        if info.type == pafs.FileType.File and info.base_name not in keep and old:
            fs.delete_file(info.path)
            files, size = files + 1, size + (info.size or 0)
    return {"files": files, "bytes": size}


def clean(uri: str, older_than_s: float = 0.0) -> dict[str, Any]:
    uri = lance_io.normalise_uri(uri)
    holder = Lease(uri, run_id="clean").holder()
    if holder and _alive(holder, STALE_AFTER_S):
        raise DatasetBusy(f"{uri} is being written by run {holder.get('run_id')}: its files are not orphans; "
                          "clean after it finishes")
    staging = clean_abandoned_staging(uri, older_than_s)
    return {"uri": uri, "staging_removed": len(staging), "orphans": delete_orphans(uri, older_than_s),
            "reject_orphans": delete_orphans(lance_io.rejects_uri(uri), older_than_s)}
