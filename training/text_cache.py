"""Encoded instructions, cached per dataset version: the text encoder runs once per distinct
instruction, not once per epoch (nor once per worker).

    <out>/_text_cache/<dataset>-<uri hash>-v<version>-<encoder key>.lance

One row per distinct final instruction (the stored text, prefixed with "Output M images."
when `text_prefix_outputs` is on): its token features (float32, cut at `text_max_tokens`),
the pooled vector, and its untruncated length, so the card can say how many instructions
were cut. The encoder key hashes what the features depend on (the encoder folder's config,
tokenizer and weight files by name and size, the max length), so another encoder or length
gets its own table. A later run on the same version adds only the texts it has not seen.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from datagen.store import lance_io
from datagen.store.lineage import file_hash

CACHE_DIR = "_text_cache"
ENCODE_BATCH = 64
SCHEMA = pa.schema([
    pa.field("key", pa.string(), nullable=False),  # sha1 of the text
    pa.field("text", pa.string()),
    pa.field("n_tokens", pa.int32()),  # untruncated length in the encoder's tokens
    pa.field("length", pa.int32()),  # tokens kept
    pa.field("tokens", pa.large_binary()),  # float32 (length, dim), C order
    pa.field("pooled", pa.binary()),  # float32 (dim,)
])


@dataclass
class TextStats:
    texts: int = 0  # distinct instructions of the dataset version
    encoded: int = 0  # encoded by this call (the rest came from the cache)
    truncated: int = 0  # distinct instructions longer than max_tokens
    truncated_rows: int = 0  # rows whose instruction is cut
    longest: int = 0  # longest instruction, in tokens
    examples: list[str] = field(default_factory=list)  # a few cut instructions, for the card


def final_text(instruction: str | None, n_outputs: int, prefix_outputs: bool) -> str:
    """The text the encoder sees: the instruction, optionally led by "Output M image(s)." (iMontage)."""
    text = instruction or ""
    if prefix_outputs:
        text = f"Output {n_outputs} image{'s' if n_outputs != 1 else ''}. {text}".rstrip()
    return text


def encoder_key(path: Path, max_tokens: int) -> str:
    """What the cached features depend on: the cut, config and tokenizer bytes, weight files by
    name and size (the texts themselves, prefixed or not, are the rows' keys)."""
    h = hashlib.sha256(f"max_tokens={max_tokens}".encode())
    for p in sorted(q for q in path.iterdir() if q.is_file()):
        if p.suffix in (".json", ".txt", ".model"):
            h.update(p.name.encode() + file_hash(p).encode())
        else:
            h.update(f"{p.name}:{p.stat().st_size}".encode())
    return h.hexdigest()[:16]


def cache_uri(root: str, ref: str, key: str) -> str:
    uri, version = lance_io.split_version(ref)
    tag = hashlib.sha1(lance_io.normalise_uri(uri).encode()).hexdigest()[:8]
    return f"{root.rstrip('/')}/{CACHE_DIR}/{lance_io.dataset_name(uri)}-{tag}-v{version}-{key}.lance"


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def build(uri: str, texts: list[str], encoder) -> tuple[str, np.ndarray, TextStats]:
    """Make sure every text has a row in the cache at `uri`; return the cache's pinned ref
    (`uri@version`), each text's row position in it, and the stats.

    `encoder` is a models.text_encoder.TextEncoder (its max_length is the cut).
    """
    import lance

    keys = [_sha(t) for t in texts]
    have: dict[str, int] = {}
    if lance_io.exists(uri):
        have = _positions(lance.dataset(uri).to_table(columns=["key"]).column("key").to_pylist())
    distinct = sorted(set(zip(keys, texts)))  # sorted: the same table whatever the row order
    todo = [(k, t) for k, t in distinct if k not in have]
    lengths = dict(zip([t for _, t in distinct], encoder.token_lengths([t for _, t in distinct])))
    stats = TextStats(texts=len(distinct), encoded=len(todo), longest=max(lengths.values(), default=0))
    cut = sorted({t for t, n in lengths.items() if n > encoder.max_length}, key=lambda t: -lengths[t])
    stats.truncated, stats.examples = len(cut), cut[:3]
    stats.truncated_rows = sum(1 for t in texts if lengths[t] > encoder.max_length)
    rows = []
    for lo in range(0, len(todo), ENCODE_BATCH):
        chunk = todo[lo:lo + ENCODE_BATCH]
        for (key, text), (tok, pooled) in zip(chunk, encoder.embed([t for _, t in chunk])):
            tok = tok.float().numpy()
            rows.append({"key": key, "text": text, "n_tokens": lengths[text], "length": tok.shape[0],
                         "tokens": np.ascontiguousarray(tok).tobytes(),
                         "pooled": np.ascontiguousarray(pooled.float().numpy()).tobytes()})
    if rows:
        table = pa.Table.from_pylist(rows, schema=SCHEMA.with_metadata({"dim": str(encoder.dim)}))
        mode = "append" if lance_io.exists(uri) else "create"
        lance.write_dataset(table, uri, mode=mode)
        have = _positions(lance.dataset(uri).to_table(columns=["key"]).column("key").to_pylist())
    ref = f"{uri}@{lance.dataset(uri).version}" if have else ""
    return ref, np.array([have[k] for k in keys], dtype=np.int64), stats


def _positions(keys: list[str]) -> dict[str, int]:
    """Each key's first row. Rows are only ever appended, so a text's first row never moves:
    a run resumed after another run appended (even the same texts, racing it) finds its rows."""
    out: dict[str, int] = {}
    for i, k in enumerate(keys):
        out.setdefault(k, i)
    return out


def read(ref: str, rows: list[int], dim: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(tokens (n, dim), pooled (dim,)) of the rows of a pinned cache version, in the order asked."""
    ds = _open(ref)
    wanted = sorted(set(rows))
    table = ds.take(wanted, columns=["length", "tokens", "pooled"]).to_pylist()
    by_row = {r: t for r, t in zip(wanted, table)}
    out = []
    for r in rows:
        t = by_row[r]
        tokens = np.frombuffer(t["tokens"], np.float32).reshape(t["length"], dim)
        out.append((tokens, np.frombuffer(t["pooled"], np.float32)))
    return out


_OPEN: dict[str, object] = {}


def _open(ref: str):
    """Cache versions opened once per decode process (a version never changes)."""
    if ref not in _OPEN:
        _OPEN[ref] = lance_io.open_dataset(ref)
    return _OPEN[ref]


def summary(stats: list[TextStats], max_tokens: int) -> dict:
    """Per-run text facts for the lineage node and the card."""
    return {"max_tokens": max_tokens, "texts": sum(s.texts for s in stats), "encoded": sum(s.encoded for s in stats),
            "truncated": sum(s.truncated for s in stats), "truncated_rows": sum(s.truncated_rows for s in stats),
            "longest": max((s.longest for s in stats), default=0),
            "examples": [e for s in stats for e in s.examples][:3]}

