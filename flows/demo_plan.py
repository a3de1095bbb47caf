"""What `make demo` makes, stated once: its embedded sources and every product's parameters.

Three places run this plan and must agree to the byte: `flows/demo.py` (the demo), `flows/serve.py`
(the defaults of the UI's deployment forms, so a reviewer's "Run" remakes the demo's datasets) and
`benchmarks/same_bytes.py` (which rebuilds the demo on restricted CPUs and compares its hashes with
tests/data/golden_hashes.json). `small` is the same plan at a size the fast test can afford.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

SIZES: dict[str, dict[str, Any]] = {
    "demo": {"collage_per_task": 12, "collage_size": 256, "views": 16, "capture_wh": (256, 192), "per_capture": 3,
             "story_seeds": (0, 1, 2), "style_num": 3 * 12},
    "small": {"collage_per_task": 2, "collage_size": 128, "views": 6, "capture_wh": (128, 96), "per_capture": 2,
              "story_seeds": (0,), "style_num": 3 * 2},
}  # fmt: skip

# Product -> dataset name under the data root, in the order the demo makes them (conditions read
# the collage, so it comes after it).
DATASETS = {"collage": "collage", "conditions": "conditions", "multiview": "multiview",
            "video-pairs": "video_pairs", "storyboard": "storyboard", "style": "style"}
TRAIN_ON = ("collage", "video_pairs", "multiview")  # the demo's training run reads these datasets


def make_sources(sources: Path, size: str = "demo", *, clips_in_fresh_process: bool = True) -> None:
    """The embedded sources under `sources` (the demo's: `<data root>/sources`; the UI's forms
    point there too): videos/, story_videos/, captures/, each made only when it is missing.

    The x264 clips come first: libx264 through PyAV gives the same frames different bytes once a
    process has encoded other videos. The demo makes them in a fresh interpreter; the same-bytes
    run, already a fresh process with its CPU restrictions applied in-process, makes them itself.
    """
    from datagen.multiview.synthetic import make_demo_captures
    from datagen.storyboard.demo_video import make_storyboard_clip

    s = SIZES[size]
    clips = sources / "videos"
    if not clips.is_dir():
        if clips_in_fresh_process:
            make_clips_in_fresh_process(clips)
        else:
            from datagen.video import make_demo_clips

            make_demo_clips(clips, seed=0)  # pan, zoom, roll, cuts, static, GIF
    stories = sources / "story_videos"
    if not stories.is_dir():
        for seed in s["story_seeds"]:
            make_storyboard_clip(stories, seed=seed)
    captures = sources / "captures"
    if not (captures / "demo").is_dir():
        w, h = s["capture_wh"]
        make_demo_captures(captures, seed=0, n_views=s["views"], width=w, height=h)


def make_clips_in_fresh_process(folder: Path) -> None:
    """The demo's clips, written by a new interpreter (see make_sources: the same bytes every time)."""
    code = f"from datagen.video import make_demo_clips; make_demo_clips({str(folder)!r}, seed=0)"
    subprocess.run([sys.executable, "-c", code], check=True)


def product_params(data: Path, size: str = "demo", collage_ref: str | None = None,
                   sources: Path | None = None) -> dict[str, dict[str, Any]]:
    """Per product, the flow's keyword arguments (config field names) for the demo's run: datasets
    under `data`, sources under `sources` (default `data/sources`).

    `collage_ref` pins the conditions' input to the collage version just made (`uri@version`);
    without it the conditions read the collage dataset's latest version.
    """
    from datagen.collage import TASKS

    s = SIZES[size]
    src = sources if sources is not None else data / "sources"
    out = {name: str(data / f"{ds}.lance") for name, ds in DATASETS.items()}
    return {
        "collage": {"out": out["collage"], "num": len(TASKS) * s["collage_per_task"], "seed": 0,
                    "size": s["collage_size"]},
        # Condition maps of the collage targets; the subject tasks' references stay inputs of
        # their rows' samples (ref.conditioned).
        "conditions": {"out": out["conditions"], "images": collage_ref or out["collage"],
                       "kinds": "canny,lineart_standard,seg", "with_references": True},
        "multiview": {"out": out["multiview"], "captures": str(src / "captures"),
                      "samples_per_capture": s["per_capture"]},
        "video-pairs": {"out": out["video-pairs"], "videos": str(src / "videos")},
        "storyboard": {"out": out["storyboard"], "videos": str(src / "story_videos")},
        # Style samples from the built-in looks (no weights).
        "style": {"out": out["style"], "num": s["style_num"]},
    }  # fmt: skip


def cli_args(product: str, params: dict[str, Any]) -> list[str]:
    """The same parameters as `unimontage datagen <product>` flags (each param's own flag)."""
    from datagen import products
    from flows.datasets import flow_parameters

    flags = {p.name: p for p in flow_parameters(products.get(product))}
    args = [product]
    for name, value in params.items():
        p = flags[name]
        if isinstance(value, bool):
            args.append(p.flag if value else p.off_flag)
        else:
            args += [p.flag, str(value)]
    return args
