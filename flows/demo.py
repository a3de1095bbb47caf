"""`make demo`: every data product end to end on the embedded defaults.

Local Ray, an ephemeral Prefect server (its database under $PREFECT_HOME, so `make ui`
shows the runs and cards afterwards), Lance datasets under ./data, and a contact sheet
PNG per dataset for people to look at.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


from prefect import flow

from datagen.store import lance_io
from datagen.report import contact_sheet
from flows import card

DATA = Path(os.environ.get("UNIMONTAGE_DATA", "data"))


def _in_fresh_process(module: str, func: str, out_dir: str) -> None:
    """Run `module.func(out_dir, seed=0)` in a new interpreter. libx264 through PyAV gives the
    same frames different bytes once a process has encoded other videos; a fresh process
    always writes the same bytes, so the demo's clips (and their pairs' hash) stay fixed."""
    code = f"from {module} import {func}; {func}({out_dir!r}, seed=0)"
    subprocess.run([sys.executable, "-c", code], check=True)


def write_sheet(uri: str, per_task: int = 2, tile: int = 160) -> Path:
    ds = lance_io.open_dataset(uri)
    examples = card.examples_per_task(ds, per_task=per_task)
    path = DATA / f"{lance_io.dataset_name(uri)}_contact.png"
    contact_sheet.save_png(contact_sheet.render(examples, tile=tile), str(path))
    return path


@flow(name="unimontage-demo")
def demo_flow(workers: int = 2) -> dict:
    """Every data product on its embedded source, then a short training run on them."""
    from datagen.multiview.synthetic import make_demo_captures
    from datagen.storyboard.demo_video import make_storyboard_clip
    from flows.datasets import flow_for
    from flows.train_flow import train_flow

    DATA.mkdir(parents=True, exist_ok=True)
    results = {}
    results["collage"] = flow_for("collage")(out=str(DATA / "collage.lance"), num=17 * 12, seed=0, size=256,
                                      workers=workers)
    collage_ref = f"{results['collage']['uri']}@{results['collage']['version']}"
    # Condition maps of the collage targets: a second dataset whose lineage points at the first.
    results["conditions"] = flow_for("conditions")(out=str(DATA / "conditions.lance"), images=collage_ref,
                                                   kinds="canny,lineart_standard,seg", workers=workers)
    captures = DATA / "sources" / "captures"
    if not (captures / "demo").is_dir():
        make_demo_captures(captures, seed=0, n_views=16)
    results["multiview"] = flow_for("multiview")(out=str(DATA / "multiview.lance"), captures=str(captures),
                                                 samples_per_capture=3, workers=workers)
    clips = DATA / "sources" / "videos"
    if not clips.is_dir():
        _in_fresh_process("datagen.video", "make_demo_clips", str(clips))  # pan, zoom, roll, cuts, static, GIF
    results["video_pairs"] = flow_for("video-pairs")(out=str(DATA / "video_pairs.lance"), videos=str(clips),
                                              workers=workers)
    stories = DATA / "sources" / "story_videos"
    if not stories.is_dir():
        for seed in range(3):
            make_storyboard_clip(stories, seed=seed)
    results["storyboard"] = flow_for("storyboard")(out=str(DATA / "storyboard.lance"), videos=str(stories),
                                            workers=workers)
    refs = [f"{results[k]['uri']}@{results[k]['version']}" for k in ("collage", "video_pairs", "multiview")]
    training = train_flow(config="demo", datasets=refs, out=str(DATA / "runs"))
    return {"datasets": results, "training": training}
def main() -> None:
    t0 = time.perf_counter()
    out = demo_flow()
    results = out["datasets"]
    sheets = {name: str(write_sheet(r["uri"])) for name, r in results.items()}
    print("\n=== UniMontage demo finished in %.0f s ===" % (time.perf_counter() - t0))
    for name, r in results.items():
        print(f"- {name}: {r['uri']}@{r['version']}  {r['rows']} samples, {r['rejects']} rejects "
              f"(content {r['content_hash'][:16]})")
        print(f"    contact sheet: {sheets[name]}   card: Prefect artifact '{r['card']}'")
        print(f"    lineage:       .venv/bin/unimontage lineage {r['uri']}@{r['version']}")
    tr = out["training"]
    print(f"- training run {tr['name']}: step {tr['step']}, checkpoint {tr['checkpoint']}")
    print(f"    card: Prefect artifact '{tr['card']}'   lineage: .venv/bin/unimontage lineage {tr['checkpoint']}")
    (DATA / "demo_summary.json").write_text(json.dumps(out, indent=1, default=str))
    print("Browse runs and cards: make ui  (then open http://127.0.0.1:4200/artifacts)")


if __name__ == "__main__":
    main()
