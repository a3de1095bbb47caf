"""Training throughput and data access: steps/s, time waiting for data, Lance vs Parquet random access.

1. A real Ray Train run (local Ray, CPU, the demo model at 32x32) on a collage dataset:
   steps/s and the fraction of step time the loop waits for Ray Data, overall and after
   the first step (whose wait includes starting the decode pipeline).
2. Random access to training samples: batches of 8 random rows (image columns included)
   from the same rows stored as Lance and as Parquet (row groups of 1024 and of 64 rows),
   read the way each format allows: Lance `take`; Parquet through `pyarrow.dataset.take`
   and by reading just the row groups that hold the rows.

    python -m benchmarks.training_perf
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
ACCESS_ROWS = 1200  # rows in the random-access table
ACCESS_BATCHES = 60
BATCH = 8


# --------------------------------------------------------------------------- data
def collage_dataset(out: str, num: int = 96, size: int = 128) -> str:
    from compute import harness

    res = harness.execute(harness.plan_run("collage", out=out, num=num, size=size), workers=2, progress=False)
    return f"{res.uri}@{res.version}"


def sample_table(rows: int, side: int = 256):
    """Rows in the sample schema: one input and one output photo crop, PNG-encoded."""
    import cv2
    import skimage.data as d

    from datagen import schema
    from datagen.rng import sample_rng
    from datagen.schema import Picture, Sample

    photos = [d.astronaut(), d.coffee(), d.chelsea(), d.rocket(), d.stereo_motorcycle()[0]]
    samples = []
    for i in range(rows):
        rng = sample_rng(0, i)
        img = photos[i % len(photos)]
        s = int(min(img.shape[:2]) * rng.uniform(0.4, 0.9))
        y, x = int(rng.integers(0, img.shape[0] - s + 1)), int(rng.integers(0, img.shape[1] - s + 1))
        crop = cv2.resize(img[y:y + s, x:x + s], (side, side), interpolation=cv2.INTER_AREA)
        sample = Sample("edit.flip", "Mirror <image 1>.", [Picture(crop, "source")],
                        [Picture(np.ascontiguousarray(crop[:, ::-1]), "target")])
        sample.sample_id, sample.index = schema.make_id("bench", i), i
        samples.append(sample)
    return schema.samples_table(samples)


# --------------------------------------------------------------------------- 1. training
def train_run(ref: str, out: str, **overrides) -> dict:
    from training.config import load_config, preset_path
    from training.job import run_training

    # The demo preset's model and batches as one stage: what is timed is the step, not a schedule.
    sets = [f"datasets=[\"{ref}\"]", "stages=[]", "max_steps=60", "checkpoint_every=60", "log_every=20",
            "mix=volume", "curriculum=[]"] + [f"{k}={v}" for k, v in overrides.items()]
    t0 = time.perf_counter()
    result = run_training(load_config(preset_path("demo"), sets), out=out)
    wall = time.perf_counter() - t0
    hist = result.history
    steady = hist[1:]
    step_s = sum(r["step_s"] for r in steady)
    return {
        "workers": overrides.get("num_workers", 1),
        "steps": len(hist),
        "job_wall_s": wall,
        "steps_per_s": len(steady) / step_s,
        "samples_per_s": sum(r["samples"] for r in steady) / step_s,
        "tokens_per_s": sum(r["tokens"] for r in steady) / step_s,
        "padding": float(np.mean([r["padding"] for r in steady])),
        "data_wait_frac": sum(r["data_wait_s"] for r in steady) / step_s,
        "data_wait_frac_incl_first": sum(r["data_wait_s"] for r in hist) / sum(r["step_s"] for r in hist),
        "first_step_wait_s": hist[0]["data_wait_s"],
        "final_loss": float(np.mean([r["loss"] for r in hist[-10:]])),
    }


# --------------------------------------------------------------------------- 2. random access
def random_access(folder: str) -> dict:
    import lance
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    from training.data import TAKE_COLUMNS

    t0 = time.perf_counter()
    table = sample_table(ACCESS_ROWS)
    build_s = time.perf_counter() - t0
    lance_uri = f"{folder}/access.lance"
    lance.write_dataset(table, lance_uri, max_rows_per_file=4096)
    pq.write_table(table, f"{folder}/rg1024.parquet", row_group_size=1024)
    pq.write_table(table, f"{folder}/rg64.parquet", row_group_size=64)
    rng = np.random.default_rng(0)
    batches = [np.sort(rng.choice(ACCESS_ROWS, BATCH, replace=False)) for _ in range(ACCESS_BATCHES)]

    ds = lance.dataset(lance_uri)

    def lance_take(idx):
        return ds.take(idx.tolist(), columns=TAKE_COLUMNS)

    def parquet_dataset_take(path):
        pds = pads.dataset(path, format="parquet")
        return lambda idx: pds.take(idx, columns=TAKE_COLUMNS)

    def parquet_row_groups(path, group):
        f = pq.ParquetFile(path)

        def take(idx):
            groups = sorted({int(i) // group for i in idx})
            part = f.read_row_groups(groups, columns=TAKE_COLUMNS)
            offsets = np.concatenate([[0], np.cumsum([min(group, ACCESS_ROWS - g * group) for g in groups])])
            local = [int(offsets[groups.index(int(i) // group)] + int(i) % group) for i in idx]
            return part.take(local)
        return take

    readers = {
        "lance take": lance_take,
        "parquet (1024-row groups), dataset.take": parquet_dataset_take(f"{folder}/rg1024.parquet"),
        "parquet (1024-row groups), read row groups": parquet_row_groups(f"{folder}/rg1024.parquet", 1024),
        "parquet (64-row groups), dataset.take": parquet_dataset_take(f"{folder}/rg64.parquet"),
        "parquet (64-row groups), read row groups": parquet_row_groups(f"{folder}/rg64.parquet", 64),
    }
    expected = [table.take(idx).column("sample_id").to_pylist() for idx in batches[:3]]
    out = {"rows": ACCESS_ROWS, "batch": BATCH, "batches": ACCESS_BATCHES, "build_s": build_s,
           "bytes": {"lance": sum(f.stat().st_size for f in Path(lance_uri).rglob("*") if f.is_file()),
                     "parquet_rg1024": os.path.getsize(f"{folder}/rg1024.parquet"),
                     "parquet_rg64": os.path.getsize(f"{folder}/rg64.parquet")}, "readers": {}}
    for name, read in readers.items():
        got = [read(idx).column("sample_id").to_pylist() for idx in batches[:3]]
        assert got == expected, f"{name} returned other rows"
        t0 = time.perf_counter()
        for idx in batches:
            read(idx)
        dt = time.perf_counter() - t0
        out["readers"][name] = {"ms_per_batch": 1000 * dt / len(batches), "rows_per_s": len(batches) * BATCH / dt}
    return out


# --------------------------------------------------------------------------- report
def markdown(res: dict) -> str:
    lines = ["## Training throughput and data access (`benchmarks/training_perf.py`)", "",
             f"Ray Train on local Ray, CPU only (one run: rough numbers); "
             f"demo model (tiny, 4x4 patches), every image at its own aspect ratio within 32x32 pixels, batches of "
             f"up to 1024 image tokens (at most 8 samples), {res['train'][0]['steps']} steps on a "
             f"{res['train_rows']}-row collage dataset.", "",
             "| workers | steps/s | samples/s | image tokens/s | padding | data wait (after step 1) | data wait (all steps) "
             "| first-step wait | job wall time |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in res["train"]:
        lines.append(f"| {r['workers']} | {r['steps_per_s']:.2f} | {r['samples_per_s']:.1f} | "
                     f"{r['tokens_per_s']:.0f} | {100 * r['padding']:.1f}% | "
                     f"{100 * r['data_wait_frac']:.1f}% | {100 * r['data_wait_frac_incl_first']:.1f}% | "
                     f"{r['first_step_wait_s']:.1f} s | {r['job_wall_s']:.0f} s |")
    acc = res["access"]
    lines += ["", f"Random access: {acc['batches']} batches of {acc['batch']} random rows (sample_id, instruction, "
              f"input and output 256x256 PNGs) out of {acc['rows']}; warm page cache.", "",
              "| reader | ms / batch | rows/s |", "|---|---|---|"]
    for name, r in acc["readers"].items():
        lines.append(f"| {name} | {r['ms_per_batch']:.1f} | {r['rows_per_s']:.0f} |")
    mb = {k: v / 2**20 for k, v in acc["bytes"].items()}
    lines += ["", "Sizes on disk: " + ", ".join(f"{k} {v:.1f} MB" for k, v in mb.items()) + "."]
    return "\n".join(lines)


def main() -> str:
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from compute.ray_adapter import ensure_ray

    ensure_ray(2)
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        ref = collage_dataset(f"{tmp}/collage.lance")
        train = [train_run(ref, f"{tmp}/runs1"),
                 train_run(ref, f"{tmp}/runs2", num_workers=2, cpus_per_worker=0.5, data_tasks=1)]
        access = random_access(tmp)
    res = {"train": train, "train_rows": 96, "access": access, "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    (RESULTS / "training_perf.json").write_text(json.dumps(res, indent=1))
    return markdown(res)


if __name__ == "__main__":
    print(main())
