"""How cost grows with work: collage at 1k, 10k and 100k samples, 2 workers, 64 px.

Each run is its own driver process (a private local Ray with 2 CPUs), timed end to end:
samples/s, the driver's peak RSS (the driver plans, schedules and commits; workers hold the
pixels), the Lance fragments the run committed and what reads see after the run's own
compaction, and the per-row cost of reading the result (a full scan of every column, and
random `take`s of 8 rows as a trainer reads) on the committed and on the compacted version.

Also: the same 10k run on a two-node cluster (`ray start --head` + `ray start --address`, one
CPU each) against the local run, as a ratio; and the driver's RSS when planning a million
items (the plan is lazy: `ItemRange`, shards travel as numbers).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SIZES = [int(n) for n in os.environ.get("SCALE_SIZES", "1000,10000,100000").split(",")]
CLUSTER_N = int(os.environ.get("SCALE_CLUSTER_N", "10000"))
PLAN_N = 1_000_000
PX = 64

RUN = """
import json, resource, sys, time
t0 = time.perf_counter()
from compute import harness
spec = harness.plan_run("collage", out=sys.argv[1], num=int(sys.argv[2]), seed=0, size=int(sys.argv[3]))
res = harness.execute(spec, workers=2, progress=False)
print(json.dumps({"wall_s": time.perf_counter() - t0, "summary": res.summary(),
                  "content_version": res.lineage.get("content_version", res.version),
                  "driver_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

PLAN = """
import json, sys, psutil, cloudpickle
rss = lambda: psutil.Process().memory_info().rss / 2**20
from compute import harness
from compute.harness import _Factory
from compute.shard_runner import RunIdentity
before = rss()
spec = harness.plan_run("collage", out="/tmp/never-written.lance", num=int(sys.argv[1]), seed=0, size=64)
planned = rss()
key = spec.run_key  # hashes every item's JSON, streamed
sizes = {k: len(spec.shard_items(k)) for k in range(spec.num_shards)}  # what the scheduler holds
factory = _Factory(RunIdentity("collage", spec.content_key, 0, "r", spec.out, spec.out), spec.product, spec.config,
                   spec.plan.context, spec.plan.items, spec.shard_size)
shipped = len(cloudpickle.dumps(factory))
print(json.dumps({"items": len(spec.items), "shards": spec.num_shards, "rss_before_mb": before,
                  "rss_planned_mb": planned, "rss_after_run_key_and_shards_mb": rss(), "factory_bytes": shipped,
                  "plan_items_type": type(spec.plan.items).__name__, "peak_mb": psutil.Process().memory_info().rss / 2**20}))
"""


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ, TQDM_DISABLE="1", RAY_USAGE_STATS_ENABLED="0")
    env.pop("RAY_ADDRESS", None)
    env.setdefault("PYTHONPATH", str(ROOT))
    return env | (extra or {})


def _py(code: str, args: list[str], env: dict[str, str], timeout: float = 7200) -> dict[str, Any]:
    res = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"benchmark driver failed ({res.returncode}): {res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def read_cost(uri: str, version: int, *, takes: int = 64, batch: int = 8, seed: int = 0,
              repeats: int = 3) -> dict[str, float]:
    """Microseconds per row, best of `repeats`: a full scan of every column; random takes of
    `batch` rows (the same picks each repeat)."""
    import lance

    ds = lance.dataset(uri, version=version)
    n = ds.count_rows()
    rng = np.random.default_rng(seed)
    picks = [np.sort(rng.choice(n, size=min(batch, n), replace=False)).tolist() for _ in range(takes)]
    scan, take = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        rows = sum(b.num_rows for b in ds.to_batches(batch_size=1024))
        scan.append((time.perf_counter() - t0) / rows * 1e6)
        t0 = time.perf_counter()
        for p in picks:
            ds.take(p)
        take.append((time.perf_counter() - t0) / (takes * min(batch, n)) * 1e6)
    return {"fragments": len(ds.get_fragments()), "scan_us_per_row": min(scan), "take_us_per_row": min(take)}


def run(out: str, n: int, env: dict[str, str]) -> dict[str, Any]:
    r = _py(RUN, [out, str(n), str(PX)], env)
    s = r["summary"]
    r["samples_per_s"] = s["rows"] / r["wall_s"]
    r["committed"] = read_cost(out, r["content_version"])
    r["compacted"] = read_cost(out, s["version"])
    return r


def cluster_run(tmp: Path, n: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from tests.local_cluster import LocalCluster

    base = Path(tempfile.mkdtemp(prefix="ray-unimontage-bench-", dir="/tmp"))
    cluster = LocalCluster(base)
    try:
        t0 = time.perf_counter()
        cluster.start()
        start_s = time.perf_counter() - t0
        r = _py(RUN, [str(tmp / f"cluster-{n}.lance"), str(n), str(PX)], cluster.env(TQDM_DISABLE="1"))
        r["cluster_start_s"] = start_s
        return r
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def main() -> str:
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    data: dict[str, Any] = {"px": PX, "runs": {}, "cluster": None}
    RESULTS.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every step: a long run interrupted still leaves its figures
        (RESULTS / "scale.json").write_text(json.dumps(data, indent=1, default=str))

    try:
        # the same planning at 1k and at 1M items: the difference is what items cost the driver
        data["plan"] = {"small": _py(PLAN, ["1000"], _env()), "large": _py(PLAN, [str(PLAN_N)], _env())}
        save()
        for n in sorted(SIZES, key=lambda n: (n > CLUSTER_N, n)):  # the largest last
            data["runs"][str(n)] = run(str(tmp / f"collage-{n}.lance"), n, _env())
            shutil.rmtree(tmp / f"collage-{n}.lance", ignore_errors=True)  # the bytes go once measured
            save()
            if n == CLUSTER_N:
                cl = cluster_run(tmp, CLUSTER_N)
                local = data["runs"][str(n)]
                cl["ratio_to_local"] = cl["wall_s"] / local["wall_s"]
                cl["same_hash_as_local"] = cl["summary"]["content_hash"] == local["summary"]["content_hash"]
                data["cluster"] = cl
                shutil.rmtree(tmp / f"cluster-{n}.lance", ignore_errors=True)
                save()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    data["runs"] = dict(sorted(data["runs"].items(), key=lambda kv: int(kv[0])))
    save()
    return render(data)


def render(d: dict[str, Any]) -> str:
    lines = [f"### How cost grows with work (`benchmarks/scale.py`)", "",
             f"Collage, {d['px']}x{d['px']}, 2 workers on a private local Ray (2 CPUs), each run its own driver "
             "process, end to end (Ray start included). Driver RSS: peak of the driver process (it plans, "
             "schedules, commits; workers hold the pixels). Fragments: as committed (one per 16-item shard) -> "
             "after the run's own compaction. Read cost per row, committed -> compacted version: a full scan of "
             "every column, and 64 random takes of 8 rows (a trainer's access). One run each on a shared "
             "2-core machine: rough numbers.", "",
             "| samples | wall s | samples/s | driver peak RSS MB | fragments | scan us/row | take us/row |",
             "|---:|---:|---:|---:|---|---|---|"]
    for n, r in d["runs"].items():
        c, k = r["committed"], r["compacted"]
        lines.append(f"| {int(n):,} | {r['wall_s']:.0f} | {r['samples_per_s']:.0f} | {r['driver_peak_rss_mb']:.0f} | "
                     f"{c['fragments']} -> {k['fragments']} | {c['scan_us_per_row']:.0f} -> "
                     f"{k['scan_us_per_row']:.0f} | {c['take_us_per_row']:.0f} -> {k['take_us_per_row']:.0f} |")
    cl = d.get("cluster")
    if cl:
        lines += ["", f"Same {int(cl['summary']['rows']):,}-sample run on a two-node cluster on this machine (`ray "
                  "start --head` + `ray start --address`, 1 CPU each, token auth), its driver joining with "
                  f"RAY_ADDRESS: {cl['wall_s']:.0f} s wall, **{cl['ratio_to_local']:.2f}x** the local run's "
                  f"(orchestration across nodes; cluster start, {cl['cluster_start_s']:.0f} s, not included); "
                  f"same content hash as local: {'yes' if cl.get('same_hash_as_local') else 'NO'}."]
    small, p = d["plan"]["small"], d["plan"]["large"]
    grow = lambda q: q["rss_after_run_key_and_shards_mb"] - q["rss_before_mb"]  # noqa: E731
    lines += ["", f"Planning on the driver (plan, run key over every item's JSON, every shard's size), driver RSS "
              f"growth: {grow(small):.0f} MB for {small['items']:,} items, {grow(p):.0f} MB for {p['items']:,} items "
              f"({p['shards']:,} shards); the plan is a `{p['plan_items_type']}` (items computed from their index) "
              f"and the factory shipped once to each worker is {small['factory_bytes'] / 2**20:.1f} MB at 1k and "
              f"{p['factory_bytes'] / 2**20:.1f} MB at 1M items (the asset pack; shards travel as numbers)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(main())
