"""The lineage graph: every dataset version, flow run, training run and checkpoint is a node.

A dataset version's node is stored in the Lance transaction that created it (see
`lance_io.commit`); a training run or checkpoint keeps its node in `lineage.json` in its
directory. Edges are references by URI@version, so the graph is walked by opening what a
node points at. Nothing here imports Prefect or Ray: the trainer uses it too.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from datagen.store import digest, lance_io

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# The packages whose code makes a dataset's bytes: their sources are the run key's code identity.
BYTE_MAKING_PACKAGES = ("datagen", "compute")


def source_hash(packages: tuple[str, ...] = BYTE_MAKING_PACKAGES) -> str:
    """sha256 over the relative paths and bytes of every .py file in `packages`.

    Unlike a git commit it also covers uncommitted edits and installs outside git: after any
    code edit, a re-run never passes old data off as up to date, and a resume never mixes
    shards made by two versions of the code.
    """
    h = hashlib.sha256()
    for pkg in packages:
        root = PACKAGE_ROOT / pkg
        for p in sorted(root.rglob("*.py")):
            h.update(str(p.relative_to(PACKAGE_ROOT)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def code_version() -> dict[str, Any]:
    """Package version, the hash of the byte-making sources, and the git commit (and whether
    the tree had local changes)."""
    from datagen import __version__

    info: dict[str, Any] = {"package": f"unimontage {__version__}", "source": _cached_source_hash()}
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE_ROOT, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PACKAGE_ROOT,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        info.update(git=sha, dirty=bool(dirty))
    except (OSError, subprocess.SubprocessError):
        info.update(git=None, dirty=None)
    return info


_SOURCE_HASH: list[str] = []


def _cached_source_hash() -> str:
    if not _SOURCE_HASH:  # the sources of a running process do not change under it
        _SOURCE_HASH.append(source_hash())
    return _SOURCE_HASH[0]


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def file_hash(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def dir_hash(path: str | Path) -> str:
    """Content hash of a folder: relative names and bytes of every file, in sorted order."""
    root = Path(path)
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        h.update(str(p.relative_to(root)).encode() + b"\0" + file_hash(p).encode())
    return h.hexdigest()


def host() -> str:
    return platform.node()


# --------------------------------------------------------------------------- reading nodes
def dataset_node(ref: str) -> dict[str, Any]:
    """The lineage node of `URI[@VERSION]`, with its URI and version filled in."""
    ds = lance_io.open_dataset(ref)
    node = lance_io.read_lineage(ds) or {"kind": "dataset", "note": "no UniMontage lineage in this version"}
    node.update(uri=lance_io.normalise_uri(lance_io.split_version(ref)[0]), version=ds.version)
    return node


def checkpoint_node(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    f = p / "lineage.json" if p.is_dir() else p
    if not f.is_file():
        raise FileNotFoundError(f"no lineage.json in {p}")
    return json.loads(f.read_text())


def node_for(ref: str) -> dict[str, Any]:
    base = lance_io.split_version(ref)[0]
    if base.endswith(".lance") or lance_io.exists(base):
        return dataset_node(ref)
    return checkpoint_node(ref)


def _parents(node: dict[str, Any]) -> list[str]:
    refs = []
    for src in node.get("sources", []):
        if src.get("ref"):
            refs.append(src["ref"])
    for key in ("datasets", "parents"):
        refs.extend(node.get(key, []))
    if node.get("training_run"):
        refs.append(node["training_run"])
    return refs


def walk(ref: str, _seen: set[str] | None = None, depth: int = 0, max_depth: int = 12) -> dict[str, Any]:
    """The graph above `ref` as nested dicts: {'ref', 'node', 'parents': [...]}."""
    seen = _seen if _seen is not None else set()
    try:
        node = node_for(ref)
    except (FileNotFoundError, ValueError, OSError) as exc:
        return {"ref": ref, "node": {"kind": "missing", "error": str(exc)}, "parents": []}
    key = f"{node.get('uri', ref)}@{node.get('version', '')}"
    if key in seen or depth >= max_depth:
        return {"ref": ref, "node": node, "parents": [], "repeat": True}
    seen.add(key)
    return {"ref": ref, "node": node,
            "parents": [walk(r, seen, depth + 1, max_depth) for r in _parents(node)]}


def _describe(node: dict[str, Any]) -> list[str]:
    kind = node.get("kind", "?")
    if kind == "dataset":
        head = (f"dataset {node.get('name', '')} {node.get('uri')}@{node.get('version')}: "
                f"{node.get('rows', '?')} rows, content {str(node.get('content_hash', ''))[:16]}")
        lines = [head]
        rej = node.get("rejects") or {}
        if rej:
            lines.append(f"  rejects {rej.get('uri')}@{rej.get('version')}: {rej.get('rows')} rows")
        for fr in node.get("flow_runs", []):
            lines.append(f"  flow run {fr.get('flow')} {fr.get('id')} ({fr.get('name', '')})")
        code = node.get("code", {})
        lines.append(f"  code {code.get('package')} git {str(code.get('git'))[:12]}"
                     f"{' +local changes' if code.get('dirty') else ''}; config {str(node.get('config_hash'))[:16]}")
        for src in node.get("sources", []):
            if not src.get("ref"):
                lines.append(f"  source {src.get('kind', '')} {src.get('uri')} sha256 {str(src.get('content_hash'))[:16]}")
        return lines
    if kind == "checkpoint":
        metrics = node.get("metrics") or {}
        loss = f", loss {metrics['loss']:.4f}" if isinstance(metrics.get("loss"), (int, float)) else ""
        lines = [f"checkpoint {node.get('uri', node.get('path', ''))}: step {node.get('step', '')}{loss}"]
        position = node.get("data_position") or {}
        if position:
            lines.append(f"  data position: next step {position.get('next_step')} of plan "
                         f"{str(position.get('plan'))[:16]}; config {str(node.get('config_hash'))[:16]}")
        if node.get("weights_sha256"):
            lines.append(f"  weights sha256 {node['weights_sha256'][:16]}")
    elif kind == "training_run":
        cfg = node.get("config") or {}
        lines = [f"training run {node.get('name', '')} {node.get('uri', node.get('path', ''))}: "
                 f"{node.get('status', '?')}, step {node.get('step', '')}/{node.get('max_steps', '?')}, "
                 f"model {cfg.get('model', '?')}, seed {node.get('seed', '?')}, config {str(node.get('config_hash'))[:16]}"]
        runs = list(node.get("flow_runs") or []) or ([node["flow_run"]] if node.get("flow_run") else [])
        for fr in runs:
            lines.append(f"  flow run {fr.get('flow')} {fr.get('id')} ({fr.get('name', '')})")
        if node.get("checkpoints"):
            lines.append(f"  checkpoints: {len(node['checkpoints'])}, latest {node['checkpoints'][-1]}")
    else:
        return [f"{kind}: {json.dumps(node)[:200]}"]
    code = node.get("code", {})
    if code:
        lines.append(f"  code {code.get('package')} git {str(code.get('git'))[:12]}"
                     f"{' +local changes' if code.get('dirty') else ''}")
    return lines
    return [f"{kind}: {json.dumps(node)[:200]}"]


def render(tree: dict[str, Any], indent: int = 0) -> str:
    pad = "  " * indent
    lines = [pad + ("<- " if indent else "") + _describe(tree["node"])[0]]
    lines += [pad + "   " + ln.strip() for ln in _describe(tree["node"])[1:]]
    if tree.get("repeat"):
        lines.append(pad + "   (shown above)")
    for parent in tree["parents"]:
        lines.append(render(parent, indent + 1))
    return "\n".join(lines)


def verify_rows(ds, recorded: str | None) -> dict[str, Any]:
    """Recompute a version's content hash from its stored rows and compare with `recorded`."""
    total, rows = 0, 0
    for batch in ds.to_batches(batch_size=256):
        for row in batch.to_pylist():
            total = (total + digest.row_digest(row)) % digest.HASH_MOD
            rows += 1
    actual = digest.content_hash(total, rows)
    return {"uri": ds.uri, "version": ds.version, "rows": rows, "content_hash": actual, "recorded": recorded,
            "ok": recorded == actual}


def verify_dataset(ref: str) -> dict[str, Any]:
    """Re-hash a version's rows and its paired rejects against the lineage; `ok` only when both match."""
    ds = lance_io.open_dataset(ref)
    node = lance_io.read_lineage(ds) or {}
    result = verify_rows(ds, node.get("content_hash"))
    rej = node.get("rejects") or {}
    if rej.get("uri"):
        try:
            result["rejects"] = verify_rows(lance_io.open_dataset(f"{rej['uri']}@{rej['version']}"),
                                            rej.get("content_hash"))
        except (FileNotFoundError, OSError, ValueError) as exc:
            result["rejects"] = {"uri": rej["uri"], "version": rej.get("version"), "ok": False,
                                 "error": f"rejects table unreadable: {exc}"}
        result["ok"] = result["ok"] and result["rejects"]["ok"]
    return result


def env_summary() -> dict[str, Any]:
    return {"python": platform.python_version(), "host": host(), "pid": os.getpid()}
