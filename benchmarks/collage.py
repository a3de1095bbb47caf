"""Collage throughput through the real pipeline (Ray actors -> Lance), against its floor.

Per task, at 512x512: samples/s with 1 and with 2 Ray workers, end to end (generate, check,
PNG-encode, hash, write Lance fragments, commit), and the steady-state rate inside the
worker. The floor is the time spent only PNG-encoding the same images (every input, output
and region mask of the stored samples) in one process; the ratio (worker time / floor) says
what generating costs on top of writing the pixels at all. Targets: ratio <= 1.6, 2-worker
speed-up >= 1.7x (on the mixed run, where the run start is amortised).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from datagen import images
from datagen.schema import from_row
from compute import harness
from datagen.store import lance_io
from compute.ray_adapter import ensure_ray

SIZE = 512
PER_TASK = int(os.environ.get("BENCH_COLLAGE_PER_TASK", "48"))
# The mixed run is long enough (96 per task) that the run start (Ray Data planning, actor
# start-up) does not hide the scaling; best of REPEATS because this 2-vCPU VM is noisy.
MIXED_PER_TASK = int(os.environ.get("BENCH_COLLAGE_MIXED_PER_TASK", "96"))
REPEATS = 2
RESULTS = Path(__file__).resolve().parent / "results"


def _run(out: str, tasks: list[str], num: int, workers: int) -> tuple[float, harness.RunResult]:
    plan = harness.plan_run("collage", out=out, num=num, seed=5, tasks=tasks, size=SIZE)  # the CLI's shard size
    t0 = time.perf_counter()
    res = harness.execute(plan, workers=workers, progress=False)
    return time.perf_counter() - t0, res


def _encode_floor(uri: str) -> float:
    """Seconds to PNG-encode every image the dataset stores, decoded beforehand (untimed); best of REPEATS."""
    ds = lance_io.open_dataset(uri)
    arrays = []
    for row in ds.to_table().to_pylist():
        s = from_row(row)
        arrays += [p.pixels for p in s.inputs + s.outputs]
        arrays += [r.mask.astype(np.uint8) * 255 for r in s.regions if r.mask is not None]
    best = float("inf")
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        for a in arrays:
            images.encode_png(a)
        best = min(best, time.perf_counter() - t0)
    return best


def _measure(tmp: Path, name: str, tasks: list[str], num: int) -> dict:
    """Best-of-REPEATS wall times with 1 and 2 workers, in-worker time and floor of the 1-worker run."""
    runs = {w: [_run(str(tmp / f"{name}-{w}-{k}.lance"), tasks, num, w) for k in range(REPEATS)] for w in (1, 2)}
    hashes = {r.content_hash for rs in runs.values() for _, r in rs}
    assert len(hashes) == 1, f"{name}: worker count or repetition changed the bytes"
    res = runs[1][0][1]
    t1, t2 = (min(t for t, _ in runs[w]) for w in (1, 2))
    # Time summed inside the worker; the 2-worker runs share two vCPUs with each other and the
    # driver, so steady-state cost is read from the 1-worker runs.
    shards = min((r.lineage["shards"] for _, r in runs[1]), key=lambda sh: sh["worker_seconds"])
    work = shards["worker_seconds"]
    floor = _encode_floor(res.uri)
    return {"task": name, "samples": res.rows, "sps_1": res.rows / t1, "sps_2": res.rows / t2,
            "sps_worker": res.rows / work, "speedup": t1 / t2, "floor_s": floor, "worker_s": work,
            "ratio": work / floor, "ratio_wall": t1 / floor,
            # the same ratio against the encoding that run did itself: immune to the VM's speed drifting
            # between the run and the floor pass, which moves short per-task figures by +-0.4
            "encode_in_run_s": shards["encode_seconds"], "ratio_in_run": work / shards["encode_seconds"]}


def main() -> str:
    from datagen.collage import TASKS

    ensure_ray(2)
    tmp = Path(tempfile.mkdtemp(prefix="bench-collage-"))
    try:
        # Warm-up: Ray workers, starter pack, font caches; not measured.
        _run(str(tmp / "warm.lance"), list(TASKS), len(TASKS), 2)
        rows = [_measure(tmp, task, [task], PER_TASK) for task in TASKS]
        total = _measure(tmp, "all tasks mixed", list(TASKS), MIXED_PER_TASK * len(TASKS))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    result = {"size": SIZE, "per_task": PER_TASK, "repeats": REPEATS, "tasks": rows, "total": total}
    (RESULTS / "collage.json").write_text(json.dumps(result, indent=1))
    return markdown(result)


def markdown(result: dict) -> str:
    rows, total, per_task, repeats = result["tasks"], result["total"], result["per_task"], result.get("repeats", 1)
    lines = [
        f"## Collage generator ({result['size']}x{result['size']}, Ray actors -> Lance)",
        "",
        f"Per task: {per_task} samples; mixed run: {total['samples']} samples; best of {repeats} runs each, end to end "
        "(run start included) with 1 and 2 workers. Worker column: time summed inside the worker (generate, check, "
        "PNG-encode, hash, write Lance fragments). Two ratios of that worker time (target <= 1.6): to a separate "
        "pass that only PNG-encodes the same stored images (the floor), and to the time the run itself spent "
        "building rows (PNG encoding and little else), timed inside the worker. The floor pass runs seconds after "
        "the run and this shared VM's speed drifts: in the mixed run the in-run encoding took "
        f"{total['encode_in_run_s'] / total['floor_s']:.2f}x the floor pass's time for the same images. Speed-up = "
        "1-worker / 2-worker wall time (target >= 1.7). Same content "
        "hash with 1 and 2 workers and across repeats in every run (asserted).",
        "",
        "| task | samples/s, 1 worker | samples/s, 2 workers | samples/s in worker | ratio to floor pass "
        "| ratio to in-run encode |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows + [total]:
        lines.append(f"| `{r['task']}` | {r['sps_1']:.1f} | {r['sps_2']:.1f} | {r['sps_worker']:.1f} | {r['ratio']:.2f} "
                     f"| {r['ratio_in_run']:.2f} |")
    lines += ["", f"Mixed run: speed-up with 2 workers **{total['speedup']:.2f}x**; ratio **{total['ratio_in_run']:.2f}** "
              f"to the in-run encode, {total['ratio']:.2f} to the floor pass, {total['ratio_wall']:.2f} end to end "
              "(1-worker wall time, run start and Ray scheduling included, over the floor pass)."]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
