"""The content hash of a dataset version: order-independent, so shards combine by addition.

Each row is encoded canonically (type-tagged, length-prefixed, keys sorted) and hashed;
a version's hash is the sum of its row digests modulo 2**256 together with the row count.
Run ids are left out, so the same config, seed and code give the same hash on every run.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pyarrow as pa

from datagen.schema import RUN_COLUMNS

HASH_MOD = 1 << 256


def _canonical(value: Any, out: list[bytes]) -> None:
    # A type-tagged, length-prefixed encoding: two different rows never encode the same.
    if value is None:
        out.append(b"N")
    elif isinstance(value, bool):
        out.append(b"T" if value else b"F")
    elif isinstance(value, int):
        out.append(b"i%d;" % value)
    elif isinstance(value, float):
        out.append(b"f" + repr(value).encode() + b";")
    elif isinstance(value, str):
        raw = value.encode()
        out.append(b"s%d:" % len(raw))
        out.append(raw)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        out.append(b"b%d:" % len(raw))
        out.append(raw)
    elif isinstance(value, dict):
        out.append(b"d%d:" % len(value))
        for k in sorted(value):
            _canonical(k, out)
            _canonical(value[k], out)
    elif isinstance(value, (list, tuple)):
        out.append(b"l%d:" % len(value))
        for v in value:
            _canonical(v, out)
    else:
        raise TypeError(f"cannot hash {type(value).__name__}")


def row_digest(row: dict[str, Any]) -> int:
    parts: list[bytes] = []
    _canonical({k: v for k, v in row.items() if k not in RUN_COLUMNS}, parts)
    return int.from_bytes(hashlib.sha256(b"".join(parts)).digest(), "big")


def table_digest(table: pa.Table) -> int:
    """Order-independent sum of row digests: shards combine by addition."""
    total = 0
    for batch in table.to_batches(max_chunksize=256):
        for row in batch.to_pylist():
            total = (total + row_digest(row)) % HASH_MOD
    return total


def content_hash(digest_sum: int, rows: int) -> str:
    """The dataset version's content hash: independent of row order, fragmenting and run ids."""
    return hashlib.sha256(f"{rows}:{digest_sum:064x}".encode()).hexdigest()
