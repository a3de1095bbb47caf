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
from dataclasses import dataclass, field
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


CHECKPOINT_NODE_FILE = "lineage.json"  # written last: the completion marker of a checkpoint folder


def _checkpoint_folder(ref: str | Path) -> str:
    """A checkpoint folder URI (local or object store), from the folder or its lineage.json."""
    uri = lance_io.normalise_uri(str(ref))
    return uri[: -len(CHECKPOINT_NODE_FILE) - 1] if uri.endswith("/" + CHECKPOINT_NODE_FILE) else uri


def checkpoint_node(path: str | Path) -> dict[str, Any]:
    """The lineage node of a training run or checkpoint folder (local or `s3://...`)."""
    folder = _checkpoint_folder(path)
    text = lance_io.read_text(f"{folder}/{CHECKPOINT_NODE_FILE}")
    if text is None:
        raise FileNotFoundError(f"no {CHECKPOINT_NODE_FILE} in {folder}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{folder}/{CHECKPOINT_NODE_FILE} is not valid JSON (truncated or corrupted: {exc})") from None


def _file_sizes(folder: str) -> dict[str, int]:
    import pyarrow.fs as pafs

    fs, path = pafs.FileSystem.from_uri(folder if "://" in folder else lance_io.normalise_uri(folder))
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        return {}
    return {i.base_name: int(i.size) for i in fs.get_file_info(pafs.FileSelector(path, recursive=False))
            if i.type == pafs.FileType.File}


def recorded_files(node: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """name -> {"bytes", "sha256"} a checkpoint's node vouches for. Nodes written before `files`
    was recorded vouch for the weights only."""
    files = dict(node.get("files") or {})
    if not files and node.get("weights_sha256"):
        files["model.safetensors"] = {"sha256": node["weights_sha256"]}
    return files


def checkpoint_complete(folder: str) -> bool:
    """True when the folder has its lineage node and every file the node lists, at its recorded
    size. Cheap (a listing, no hashing): a folder a killed writer or a partial copy left behind
    has no node yet, or misses a file, or holds a shorter one."""
    try:
        node = checkpoint_node(folder)
    except (FileNotFoundError, ValueError, OSError):
        return False
    sizes = _file_sizes(_checkpoint_folder(folder))
    files = recorded_files(node) or {"config.json": {}}
    return all(name in sizes and sizes[name] == meta.get("bytes", sizes[name]) for name, meta in files.items())


def verify_checkpoint(ref: str | Path) -> dict[str, Any]:
    """Re-hash a checkpoint's files against its lineage node. `ok` only when every file the node
    lists is there with its recorded size and sha256; `error` is one line naming the first bad file."""
    folder = _checkpoint_folder(ref)
    result: dict[str, Any] = {"uri": folder, "kind": "checkpoint", "ok": False, "files": {}}
    try:
        node = checkpoint_node(folder)
    except (FileNotFoundError, ValueError, OSError) as exc:
        return result | {"error": f"checkpoint {folder} is incomplete or unreadable: {exc}"}
    files = recorded_files(node)
    if not files:
        return result | {"error": f"checkpoint {folder}: its {CHECKPOINT_NODE_FILE} records no file hashes to check"}
    errors = []
    for name, meta in sorted(files.items()):
        uri = f"{folder}/{name}"
        try:
            actual, size = _uri_hash(uri)
        except (FileNotFoundError, OSError) as exc:
            result["files"][name] = {"ok": False, "error": str(exc)}
            errors.append(f"{uri} is missing or unreadable")
            continue
        ok = actual == meta.get("sha256") and size == meta.get("bytes", size)
        result["files"][name] = {"ok": ok, "sha256": actual, "recorded": meta.get("sha256"), "bytes": size}
        if not ok:
            what = (f"has {size} bytes, {meta['bytes']} recorded (truncated?)" if size != meta.get("bytes", size)
                    else f"sha256 {actual[:16]} does not match the recorded {str(meta.get('sha256'))[:16]}")
            errors.append(f"{uri} {what}: the file is corrupted or was changed")
    if errors:
        return result | {"error": f"checkpoint {folder}: " + "; ".join(errors)}
    return result | {"ok": True}


def _uri_hash(uri: str, chunk: int = 1 << 20) -> tuple[str, int]:
    """sha256 and size of a local or object-store file, streamed."""
    if "://" not in uri:
        if not os.path.isfile(uri):
            raise FileNotFoundError(f"missing {uri}")
        return file_hash(uri, chunk), os.path.getsize(uri)
    import pyarrow.fs as pafs

    fs, path = pafs.FileSystem.from_uri(uri)
    if fs.get_file_info(path).type != pafs.FileType.File:
        raise FileNotFoundError(f"missing {uri}")
    h, size = hashlib.sha256(), 0
    with fs.open_input_stream(path) as f:
        while block := f.read(chunk):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


def verify(ref: str) -> dict[str, Any]:
    """`lineage --verify`: a dataset version's rows, or a checkpoint's files, against its lineage."""
    base = lance_io.split_version(ref)[0]
    if base.endswith(".lance") or lance_io.exists(base):
        return verify_dataset(ref)
    return verify_checkpoint(ref)


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
    if node.get("training_run"):  # first: a checkpoint's datasets are its run's, reached through it
        refs.append(node["training_run"])
    for key in ("datasets", "parents"):
        refs.extend(node.get(key, []))
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
        external = [src for src in node.get("sources", []) if not src.get("ref")]
        for src in external[:MAX_LISTED_SOURCES]:
            lines.append(f"  source {src.get('kind', '')} {src.get('uri')} sha256 {str(src.get('content_hash'))[:16]}")
        if len(external) > MAX_LISTED_SOURCES:
            lines.append(f"  ... and {len(external) - MAX_LISTED_SOURCES} more sources (--format json lists them all)")
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


def node_id(node: dict[str, Any], ref: str = "") -> str:
    """One name per graph node: `URI@VERSION` for dataset versions, the folder for runs and checkpoints."""
    kind = node.get("kind")
    if kind == "dataset" and node.get("uri"):
        return f"{lance_io.normalise_uri(node['uri'])}@{node.get('version')}"
    if kind == "review":
        return f"review:{node.get('dataset')}:{node.get('id')}"
    where = node.get("uri") or node.get("path")
    return lance_io.normalise_uri(where) if where else ref


def _flatten(tree: dict[str, Any]) -> list[tuple[str, dict[str, Any], list[str]]]:
    """(id, node, parent ids) of every node in the walked tree, each once, the root first."""
    out: dict[str, tuple[dict[str, Any], list[str]]] = {}

    def visit(t: dict[str, Any]) -> str:
        nid = node_id(t["node"], t["ref"])
        parents = [visit(p) for p in t.get("parents", [])]
        run = t["node"].get("training_run")
        if run and lance_io.normalise_uri(run) in parents:  # a checkpoint: its run stands for the run's datasets
            parents = [lance_io.normalise_uri(run)]
        if nid not in out or (parents and not out[nid][1]):  # a repeat carries no parents: keep the first
            out[nid] = (t["node"], parents)
        return nid

    order = [visit(tree)]  # nearest first: breadth-first from the root
    for nid in order:
        order += [p for p in out[nid][1] if p not in order]
    return [(k, out[k][0], out[k][1]) for k in order]


def _review_line(review: dict[str, Any]) -> str:
    flags = review.get("flags") or {}
    flagged = f", {flags.get('rows')} sample(s) flagged in {flags.get('uri')}@{flags.get('version')}" if flags else ""
    return f"  review {review.get('decision')} by {review.get('reviewer')} at {review.get('decided_at')}{flagged}"


def _short(node: dict[str, Any], nid: str) -> str:
    kind = node.get("kind", "?")
    if kind == "dataset":
        return f"dataset {node.get('name', '')} {nid}"
    return f"{kind.replace('_', ' ')} {nid}"


def render(tree: dict[str, Any]) -> str:
    """The walked graph as text, each node once (the root first), each with the nodes it came from."""
    from datagen.store import reviews

    flat = _flatten(tree)
    shorts = {nid: _short(node, nid) for nid, node, _ in flat}
    blocks = []
    for nid, node, parents in flat:
        lines = _describe(node)
        if node.get("kind") == "dataset" and node.get("uri"):
            lines += [_review_line(r) for r in reviews.reviews_of(node["uri"], node.get("version"))]
        lines += [f"  <- {shorts[p]}" for p in parents]
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


# --------------------------------------------------------------------------- the graph as a picture's input
MAX_SOURCE_BOXES = 4  # more external sources than this are drawn as one box per kind
MAX_LISTED_SOURCES = 20  # ... and listed up to this many in text and cards
@dataclass
class GraphNode:
    id: str
    kind: str  # source | flow_run | dataset | review | training_run | checkpoint | missing
    title: str
    lines: list[str]


@dataclass
class LineageGraph:
    """Nodes and parent -> child edges above (and the reviews and checkpoints beside) `focus`."""
    focus: str
    nodes: dict[str, GraphNode] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)

    def add(self, node: GraphNode) -> str:
        self.nodes.setdefault(node.id, node)
        return node.id

    def link(self, parent: str, child: str) -> None:
        if parent != child and (parent, child) not in self.edges:
            self.edges.append((parent, child))


def _h(value: Any, n: int = 12) -> str:
    return str(value)[:n] if value else "?"


def _box(nid: str, node: dict[str, Any]) -> GraphNode:
    kind = node.get("kind", "missing")
    if kind == "dataset":
        rows = node.get("rows")
        return GraphNode(nid, kind, f"{node.get('name') or 'dataset'} @ v{node.get('version')}",
                         [node.get("uri", nid), f"{rows if rows is not None else '?'} rows, content {_h(node.get('content_hash'))}"])
    if kind == "training_run":
        cfg = node.get("config") or {}
        return GraphNode(nid, kind, f"training run {node.get('name', '')}",
                         [nid, f"{node.get('status', '?')}, step {node.get('step', '?')}/{node.get('max_steps', '?')}, "
                               f"model {cfg.get('model', '?')}", f"config {_h(node.get('config_hash'))}"])
    if kind == "checkpoint":
        loss = (node.get("metrics") or {}).get("loss")
        lines = [nid, f"loss {loss:.4f}" if isinstance(loss, (int, float)) else "loss ?"]
        if node.get("weights_sha256"):
            lines.append(f"weights {_h(node['weights_sha256'])}")
        return GraphNode(nid, kind, f"checkpoint, step {node.get('step', '?')}", lines)
    return GraphNode(nid, "missing", "missing", [nid, str(node.get("error", ""))[:80]])


def _flow_run_box(fr: dict[str, Any]) -> GraphNode:
    return GraphNode(f"flow-run:{fr.get('id')}", "flow_run", f"flow run {fr.get('flow', '')}",
                     [str(fr.get("name") or ""), f"id {_h(fr.get('id'), 8)}"])


def _source_boxes(nid: str, node: dict[str, Any]) -> list[GraphNode]:
    """A box per external source; a product that records one source per file (video clips) gets
    one box per kind instead, naming the folder and the count."""
    external = [s for s in node.get("sources", []) if not s.get("ref")]
    if len(external) <= MAX_SOURCE_BOXES:
        return [GraphNode(f"source:{s.get('kind')}:{s.get('uri')}", "source", f"source {s.get('kind', '')}",
                          [str(s.get("uri")), f"sha256 {_h(s.get('content_hash'))}"]) for s in external]
    boxes = []
    for kind in dict.fromkeys(str(s.get("kind", "")) for s in external):
        uris = [str(s.get("uri")) for s in external if str(s.get("kind", "")) == kind]
        folder = os.path.commonprefix(uris).rsplit("/", 1)[0] or "."
        boxes.append(GraphNode(f"sources:{nid}:{kind}", "source", f"{len(uris)} {kind} source{'s' if len(uris) != 1 else ''}",
                               [f"{folder}/", f"e.g. {uris[0].rsplit('/', 1)[-1]}; hashes in --format json"]))
    return boxes


def graph(ref_or_tree: str | dict[str, Any], *, max_checkpoints: int = 6) -> LineageGraph:
    """Sources -> flow runs -> datasets@version (-> reviews) -> flow run -> training run ->
    checkpoints, for a dataset version, a training run or a checkpoint."""
    from datagen.store import reviews

    tree = walk(ref_or_tree) if isinstance(ref_or_tree, str) else ref_or_tree
    flat = _flatten(tree)
    g = LineageGraph(focus=flat[0][0])
    for nid, node, _ in flat:
        g.add(_box(nid, node))
    for nid, node, parents in flat:
        kind = node.get("kind")
        runs = list(node.get("flow_runs") or []) or ([node["flow_run"]] if node.get("flow_run") else [])
        via = [g.add(_flow_run_box(fr)) for fr in runs if fr]
        ups = list(parents) + [g.add(box) for box in _source_boxes(nid, node)] if kind == "dataset" else list(parents)
        for target in via or [nid]:
            for up in ups:
                g.link(up, target)
            if target != nid:
                g.link(target, nid)
        if kind == "dataset" and node.get("uri"):
            for r in reviews.reviews_of(node["uri"], node.get("version")):
                flags = (r.get("flags") or {}).get("rows", 0)
                g.link(nid, g.add(GraphNode(f"review:{nid}:{r.get('id')}", "review", f"review: {r.get('decision')}",
                                            [f"by {r.get('reviewer')}", str(r.get("decided_at")),
                                             f"{flags} sample(s) flagged"])))
        if kind == "training_run":
            for path in list(node.get("checkpoints") or [])[-max_checkpoints:]:
                cid = lance_io.normalise_uri(path)
                if cid not in g.nodes:
                    try:
                        g.add(_box(cid, checkpoint_node(path)))
                    except (FileNotFoundError, OSError, ValueError):
                        g.add(GraphNode(cid, "checkpoint", "checkpoint", [cid, "(no lineage.json)"]))
                g.link(nid, cid)
    return g


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
