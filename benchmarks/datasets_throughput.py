"""End-to-end throughput of the multi-view, storyboard, video-pair and condition flows.

Each flow's harness run (Ray actors or tasks -> Lance commit) on its embedded demo source,
with 1 and 2 workers; the fixed start of a run (actor pool, model/scorer setup) is
included, as a user sees it. Sources are made once, before timing.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from compute import harness
from compute.ray_adapter import ensure_ray

RESULTS = Path(__file__).resolve().parent / "results"


def _sources(tmp: Path) -> dict:
    from datagen.multiview.synthetic import make_demo_captures
    from datagen.storyboard.demo_video import make_storyboard_clip
    from datagen.video import make_demo_clips

    make_demo_captures(tmp / "captures", seed=0, n_views=16)
    make_demo_clips(tmp / "clips", seed=0)
    for k in range(4):
        make_storyboard_clip(tmp / "stories", seed=k)
    collage = harness.execute(harness.plan_run("collage", out=str(tmp / "collage.lance"), num=64,
                                               tasks=["edit.add", "t2i.layout"], size=256), workers=2, progress=False)
    return {"collage": f"{collage.uri}@{collage.version}"}


def _plans(tmp: Path, src: dict, tag: str) -> dict:

    return {
        "multiview (3 captures x 4 samples, 4 classical scorers)":
            harness.plan_run("multiview", out=str(tmp / f"mv{tag}.lance"), captures=str(tmp / "captures"),
                             samples_per_capture=4, scorers="sharpness,exposure,geometry,diversity", shard_size=1),
        "storyboard from video (4 videos, faces + 2 scorers)":
            harness.plan_run("storyboard", out=str(tmp / f"sb{tag}.lance"), videos=str(tmp / "stories")),
        "video pairs (6 clips, DIS motion)":
            harness.plan_run("video-pairs", out=str(tmp / f"vp{tag}.lance"), videos=str(tmp / "clips")),
        "conditions (64 images, canny+lineart+seg)":
            harness.plan_run("conditions", out=str(tmp / f"cd{tag}.lance"), images=src["collage"],
                             kinds="canny,lineart_standard,seg", shard_size=16),
    }


def main() -> str:
    ensure_ray(2)
    tmp = Path(tempfile.mkdtemp(prefix="bench-flows-"))
    rows = []
    try:
        src = _sources(tmp)
        timings: dict[str, dict] = {}
        for workers in (1, 2):
            for name, plan in _plans(tmp, src, f"-{workers}").items():
                t0 = time.perf_counter()
                res = harness.execute(plan, workers=workers, progress=False)
                dt = time.perf_counter() - t0
                timings.setdefault(name, {})[workers] = (dt, res)
        for name, t in timings.items():
            (t1, r1), (t2, r2) = t[1], t[2]
            rows.append({"flow": name, "inputs": r1.items, "samples": r1.rows, "rejects": r1.rejects,
                         "s_1": t1, "s_2": t2, "sps_1": r1.rows / t1, "sps_2": r2.rows / t2,
                         "same_bytes": r1.content_hash == r2.content_hash})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "datasets_throughput.json").write_text(json.dumps(rows, indent=1))
    lines = ["## Dataset flows end to end (embedded demo sources; Ray -> Lance, run start included)", "",
             "| flow | inputs | samples | rejects | s, 1 worker | s, 2 workers | samples/s, 1 | samples/s, 2 | same bytes 1 vs 2 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['flow']} | {r['inputs']} | {r['samples']} | {r['rejects']} | {r['s_1']:.1f} | {r['s_2']:.1f} | "
                     f"{r['sps_1']:.2f} | {r['sps_2']:.2f} | {'yes' if r['same_bytes'] else 'NO'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
