"""Same bytes on any CPU: all six products, unrestricted vs with every library's SIMD pinned low.

Each run is a fresh interpreter (`python -m benchmarks.same_bytes run ...`) that makes the
demo's sources (video clips, storyboard clips, Mitsuba captures) and runs the six dataset
commands of the CLI in-process (one local Ray, one Prefect server for all six), the
restricted one under `datagen.cpu_features.restricted_env()`. The parent compares the
Lance datasets row by row: content hashes, then per-row digests, then per field.

`make bench` runs it at demo sizes and records the cost of the exact pixel paths; the
test suite (`tests/test_same_bytes_any_cpu.py`) runs it too and checks the golden hashes in
`tests/data/golden_hashes.json`. After a deliberate content change, re-record them with

    python -m benchmarks.same_bytes record-golden

(and say in the commit why the content changed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
GOLDEN = ROOT / "tests" / "data" / "golden_hashes.json"
PRODUCTS = ("collage", "conditions", "multiview", "video_pairs", "storyboard", "style")

# --------------------------------------------------------------------------- the child run
def run_products(src: Path, data: Path, size: str, workers: int) -> dict[str, float]:
    """The six dataset commands of the demo's plan (flows/demo_plan.py), as a user types them;
    returns seconds per dataset."""
    from flows import demo_plan
    from flows.cli import app

    from datagen.store import lance_io

    times = {}
    plan = demo_plan.product_params(data, size, sources=src)
    for product, dataset in demo_plan.DATASETS.items():
        t0 = time.perf_counter()
        app(["datagen", *demo_plan.cli_args(product, plan[product]), "--workers", str(workers), "--no-progress"],
            standalone_mode=False)
        times[dataset] = time.perf_counter() - t0
        if product == "collage":  # the conditions read the version made just now, as in the demo
            out = plan[product]["out"]
            plan = demo_plan.product_params(data, size, f"{out}@{lance_io.open_dataset(out).version}", sources=src)
    return times


def start_ray(root: Path, workers: int) -> None:
    """The local Ray the flows will use, started first; `ray_ready` tells the launcher, which
    starts the next run only then (two raylets starting at once on a busy 2-core machine can
    miss Ray's fixed 30 s registration deadline). One more try if that still happens."""
    import ray

    from compute.ray_adapter import ensure_ray

    try:
        ensure_ray(workers)
    except Exception as exc:  # Ray raises a bare Exception for a raylet that never registered
        if "timed out during startup" not in str(exc):
            raise
        ray.shutdown()
        ensure_ray(workers)
    (root / "ray_ready").write_text("")


def child(root: Path, size: str, workers: int, sources: Path | None) -> None:
    from datagen import cpu_features

    cpu_features.apply_av_cpu_flags()  # before any codec opens (the decode modules do it too)
    start_ray(root, workers)
    t0 = time.perf_counter()
    src = sources or root / "sources"
    if sources is None:
        from flows import demo_plan

        demo_plan.make_sources(src, size, clips_in_fresh_process=False)
    t_sources = time.perf_counter() - t0
    times = run_products(src, root / "data", size, workers)
    report = {"capabilities": cpu_features.capabilities(), "sources_s": t_sources, "product_s": times}
    (root / "run.json").write_text(json.dumps(report, indent=1))


# --------------------------------------------------------------------------- launching
@dataclass
class Run:
    root: Path
    restricted: bool
    proc: subprocess.Popen
    started: float

    def wait_for_ray(self, timeout: float = 300.0) -> None:
        """Until this run's Ray is up (or the run ended): then the next run may start its own."""
        deadline = time.monotonic() + timeout
        while not (self.root / "ray_ready").exists() and self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)

    def wait(self, timeout: float) -> dict[str, Any]:
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
            raise RuntimeError(f"run in {self.root} timed out after {timeout} s:\n{out[-4000:]}") from None
        if self.proc.returncode != 0:
            raise RuntimeError(f"run in {self.root} failed ({self.proc.returncode}):\n{out[-6000:]}")
        report = json.loads((self.root / "run.json").read_text())
        report["wall_s"] = time.perf_counter() - self.started
        return report


def launch(root: Path, size: str, *, restricted: bool, workers: int = 1, sources: Path | None = None,
           prefect_api: str | None = None) -> Run:
    """Start one run of all six products in a fresh interpreter; `.wait()` for its report.

    The run starts its own local Ray (its workers inherit the restricted environment) and,
    unless `prefect_api` names a running Prefect server, its own ephemeral Prefect server.
    """
    from datagen.cpu_features import restricted_env

    root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env.pop("PREFECT_API_URL", None)
    if prefect_api:
        env["PREFECT_API_URL"] = prefect_api
    env.update({
        "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "PREFECT_HOME": str(root / ".prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "RAY_USAGE_STATS_ENABLED": "0",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TQDM_DISABLE": "1",
        # The ephemeral server starts slowly on a busy 2-core machine (default: 20 s).
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    })  # fmt: skip
    if restricted:
        env = restricted_env(env)
    cmd = [sys.executable, "-m", "benchmarks.same_bytes", "run", str(root), size, str(workers)]
    if sources is not None:
        cmd.append(str(sources))
    proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return Run(root, restricted, proc, time.perf_counter())


# --------------------------------------------------------------------------- comparing
def read_products(data: Path) -> dict[str, dict[str, Any]]:
    """Per product: the recorded content hash, a recomputed one, every row by sample_id, the
    rejects (source paths relative to the run), and a digest of every source file."""
    from datagen.store import digest, lance_io

    root = str(data.parent)

    out = {}
    for name in PRODUCTS:
        uri = str(data / f"{name}.lance")
        ds = lance_io.open_dataset(uri)
        rows = {r["sample_id"]: r for r in ds.to_table().to_pylist()}
        digests = {k: digest.row_digest(r) for k, r in rows.items()}
        total = sum(digests.values()) % digest.HASH_MOD
        lineage = lance_io.read_lineage(ds) or {}
        rej = lance_io.open_dataset(lance_io.rejects_uri(uri)).to_table().to_pylist()
        out[name] = {
            "content_hash": lineage.get("content_hash"),
            "recomputed": digest.content_hash(total, len(rows)),
            "rows": rows,
            "digests": digests,
            "rejects": sorted((r["reason"], r["source"].replace(root, "<run>"), r["detail"]) for r in rej),
        }
    return out


def source_digests(root: Path) -> dict[str, str]:
    """sha256 of every file under `root/sources`, by relative path."""
    import hashlib

    src = root / "sources"
    return {str(p.relative_to(src)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(src.rglob("*")) if p.is_file()}  # fmt: skip


def diff_products(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per product: equal hashes?, and for differing rows which fields differ and how."""
    report = {}
    for name in PRODUCTS:
        pa_, pb = a[name], b[name]
        ids = sorted(set(pa_["rows"]) | set(pb["rows"]))
        rows = {}
        for sid in ids:
            ra, rb = pa_["rows"].get(sid), pb["rows"].get(sid)
            if ra is None or rb is None:
                rows[sid] = {"missing_in": "a" if ra is None else "b"}
            elif pa_["digests"][sid] != pb["digests"][sid]:
                rows[sid] = field_diff(ra, rb)
        report[name] = {
            "hash_a": pa_["content_hash"], "hash_b": pb["content_hash"],
            "equal": pa_["content_hash"] == pb["content_hash"],
            "rows": len(pa_["rows"]), "rows_differ": len(rows), "differences": rows,
            "rejects_equal": pa_["rejects"] == pb["rejects"],
        }  # fmt: skip
    return report


def field_diff(ra: dict[str, Any], rb: dict[str, Any]) -> dict[str, Any]:
    from datagen.images import decode
    from datagen.schema import RUN_COLUMNS

    out: dict[str, Any] = {}
    for col in ra:
        if col in RUN_COLUMNS or ra[col] == rb[col]:
            continue
        if col in ("inputs", "outputs"):
            desc = []
            for k, (ia, ib) in enumerate(zip(ra[col] or [], rb[col] or [])):
                if ia != ib:
                    pa_, pb = decode(ia["data"]), decode(ib["data"])
                    if pa_.shape != pb.shape:
                        desc.append(f"{col}[{k}] shape {pa_.shape} vs {pb.shape}")
                        continue
                    moved = pa_ != pb if pa_.ndim == 2 else (pa_ != pb).any(axis=-1)
                    n = int(moved.sum())
                    desc.append(f"{col}[{k}] bytes differ; {f'{n} pixels differ' if n else 'pixels equal'}")
            out[col] = desc
        elif col == "scores":
            sa, sb = dict(ra[col] or []), dict(rb[col] or [])
            out[col] = {k: (sa.get(k), sb.get(k)) for k in sorted(set(sa) | set(sb)) if sa.get(k) != sb.get(k)}
        elif col == "meta":
            ma, mb = json.loads(ra[col]), json.loads(rb[col])
            out[col] = _json_diff(ma, mb)
        elif col == "regions":
            out[col] = [(x["name"], x["box"], y["box"], x["mask"] == y["mask"])
                        for x, y in zip(ra[col], rb[col]) if x != y]  # fmt: skip
        else:
            out[col] = (str(ra[col])[:200], str(rb[col])[:200])
    return out


def _json_diff(a: Any, b: Any, path: str = "") -> dict[str, Any]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = {}
        for k in sorted(set(a) | set(b)):
            out.update(_json_diff(a.get(k), b.get(k), f"{path}.{k}"))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = {}
        for i, (x, y) in enumerate(zip(a, b)):
            out.update(_json_diff(x, y, f"{path}[{i}]"))
        return out
    return {} if a == b else {path: (a, b)}


def summary(report: dict[str, dict[str, Any]], limit: int = 6) -> str:
    """A human-readable account of which rows and fields differ."""
    lines = []
    for name, r in report.items():
        lines.append(f"{name}: {'equal' if r['equal'] else 'DIFFER'} ({r['hash_a']} vs {r['hash_b']}), "
                     f"{r['rows_differ']}/{r['rows']} rows differ, rejects {'equal' if r['rejects_equal'] else 'DIFFER'}")
        for sid, d in list(r["differences"].items())[:limit]:
            lines.append(f"    {sid}: {json.dumps(d, default=str)[:600]}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- golden hashes
def golden(size: str = "demo") -> dict[str, str]:
    """The recorded content hashes of the six products at `size` ("demo" or "small")."""
    return json.loads(GOLDEN.read_text())[size]


def record_golden(sizes: tuple[str, ...] = ("demo", "small")) -> dict[str, dict[str, str]]:
    """Run the products once per size (unrestricted, fresh sources) and write their hashes to
    GOLDEN. Only after a deliberate content change, explained in the commit."""
    record = {"about": "Content hashes of the six datasets made from scratch (sources included, seed 0): "
                       "'demo' = flows/demo.py's sources and sizes, 'small' = the test suite's. "
                       "tests/test_same_bytes_any_cpu.py and `make bench` compare fresh runs with these. "
                       "Re-record only after a deliberate content change, explained in the commit: "
                       "python -m benchmarks.same_bytes record-golden"}  # fmt: skip
    if GOLDEN.exists():
        record.update({k: v for k, v in json.loads(GOLDEN.read_text()).items() if k in SIZES})
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="sb-golden-") as tmp:
            launch(Path(tmp), size, restricted=False, workers=2).wait(timeout=3600)
            record[size] = {name: p["content_hash"] for name, p in read_products(Path(tmp) / "data").items()}
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(record, indent=1) + "\n")
    return {size: record[size] for size in sizes}


# --------------------------------------------------------------------------- make bench
def main() -> str:
    """Demo sizes, unrestricted and restricted side by side; a markdown section."""
    with tempfile.TemporaryDirectory(prefix="sb-bench-") as tmp:
        a = launch(Path(tmp) / "fast", "demo", restricted=False, workers=1)
        a.wait_for_ray()
        b = launch(Path(tmp) / "restricted", "demo", restricted=True, workers=1)
        ra, rb = a.wait(3600), b.wait(3600)
        report = diff_products(read_products(a.root / "data"), read_products(b.root / "data"))
        sa, sb = source_digests(a.root), source_digests(b.root)
    gold = golden("demo") if GOLDEN.exists() else {}
    print(summary(report))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "same_bytes.json").write_text(json.dumps({
        "products": {k: {x: r[x] for x in ("hash_a", "hash_b", "equal", "rows", "rows_differ", "rejects_equal")}
                     for k, r in report.items()},
        "golden_demo": gold, "sources_equal": sa == sb, "fast": ra, "restricted": rb,
    }, indent=1, default=str))  # fmt: skip
    rows = ["| product | rows | content hash | restricted CPU | golden |", "|---|---:|---|---|---|"]
    for name, r in report.items():
        rows.append(f"| {name} | {r['rows']} | `{r['hash_a'][:16]}` | {'same' if r['equal'] else 'DIFFERENT'} | "
                    f"{'same' if gold.get(name) == r['hash_a'] else 'DIFFERENT'} |")
    caps = rb["capabilities"]
    md = [
        "## Same bytes on any CPU (demo sizes)",
        "",
        "All six products made twice from scratch (sources included), each in its own process, one worker: "
        "once as this CPU allows, once with every library's SIMD dispatch pinned to its baseline "
        "(`datagen.cpu_features.restricted_env()`). The restricted process reported: OpenCV dispatching "
        f"{caps['opencv']['dispatched'] or 'nothing above SSE3'}, {caps['opencv']['ipp_version']}, NumPy X86_V3 "
        f"{'on' if caps['numpy'].get('X86_V3') else 'off'}, OpenBLAS {', '.join(caps['openblas'])}, "
        f"FFmpeg cpu flags {sorted(set(caps['ffmpeg'].values()))}, torch {caps.get('torch')}.",
        "",
        *rows,
        "",
        f"Source files (clips, storyboard clips, Mitsuba captures): {'identical' if sa == sb else 'DIFFERENT'} "
        f"({len(sa)} files). Wall time, sources + six products: {ra['wall_s']:.0f} s as this CPU allows, "
        f"{rb['wall_s']:.0f} s restricted (both runs at once on a shared 2-core machine: rough).",
    ]
    text = "\n".join(md) + "\n"
    (RESULTS / "same_bytes.md").write_text(text)
    return text


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else "bench"
    if cmd == "run":
        root, size, workers = Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
        child(root, size, workers, Path(sys.argv[5]) if len(sys.argv) > 5 else None)
    elif cmd == "record-golden":  # python -m benchmarks.same_bytes record-golden [demo|small]
        print(json.dumps(record_golden(tuple(sys.argv[2:]) or ("demo", "small")), indent=1))
    elif cmd == "compare":  # python -m benchmarks.same_bytes compare DIR_A DIR_B: which rows and fields differ
        print(summary(diff_products(read_products(Path(sys.argv[2])), read_products(Path(sys.argv[3])))))
    else:
        print(main())
