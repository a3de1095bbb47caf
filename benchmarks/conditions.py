"""Condition-map annotators: images/s at 512x512, batched as the flow calls them vs one at a time.

    .venv/bin/python -m benchmarks.conditions [--images 8] [--only canny,hed] [--quick]

(`make bench` calls `main()`, which returns the markdown table.)

Classical annotators run as shipped. Model-backed ones run on random weights written in the
real layouts (datagen.testing.tiny_models): for controlnet_aux that is the real
architecture, so the compute is representative; Depth-Anything-V2 is measured at the real
V2-Small size and with a tiny config (plumbing only). Random weights find no person, so the
OpenPose row is the body network alone (hand/face stages run per detected person).
Writes benchmarks/results/conditions.json and conditions.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import skimage.data

from datagen.conditions import make_annotator
from datagen.testing.tiny_models import write_annotators_dir, write_depth_anything_dir
from datagen.schema import Picture, Region, Sample

RESULTS = Path(__file__).resolve().parent / "results"
SIDE = 512


def photos(n: int) -> list[np.ndarray]:
    """n real photos, centre-cropped square and resized to 512x512 RGB."""
    sources = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket(),
               skimage.data.camera(), skimage.data.stereo_motorcycle()[0], skimage.data.immunohistochemistry(),
               skimage.data.hubble_deep_field()]
    out = []
    for k in range(n):
        img = sources[k % len(sources)]
        img = img if img.ndim == 3 else np.repeat(img[:, :, None], 3, axis=2)
        h, w = img.shape[:2]
        s = min(h, w)
        crop = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        crop = crop if k < len(sources) else crop[:, ::-1]  # repeats are mirrored, not identical
        out.append(np.ascontiguousarray(cv2.resize(crop, (SIDE, SIDE), interpolation=cv2.INTER_AREA)))
    return out


def collage_samples(images: list[np.ndarray]) -> list[Sample]:
    """Records with three disk regions each, the shape seg_regions reads."""
    yy, xx = np.mgrid[:SIDE, :SIDE]
    samples = []
    for k, img in enumerate(images):
        disks = [(yy - 128 - 120 * j) ** 2 + (xx - 150 - 90 * j - 7 * k) ** 2 < 90**2 for j in range(3)]
        regions = [Region(f"subject:{j}", "output", 0, mask) for j, mask in enumerate(disks)]
        samples.append(Sample("edit.add", "", [], [Picture(img, "target")], regions))
    return samples


def cases(aux_dir: Path, depth_tiny: Path, depth_small: Path) -> list[tuple[str, str, dict[str, Any], str]]:
    """(label, registry name, options, weights note)."""
    return [
        ("canny (auto)", "canny", {}, "none"),
        ("canny (100/200)", "canny", {"low": 100, "high": 200}, "none"),
        ("lineart_standard", "lineart_standard", {}, "none"),
        ("seg_regions", "seg_regions", {}, "none"),
        ("hed", "hed", {"weights_dir": aux_dir}, "random, real size"),
        ("hed, 8 per forward", "hed", {"weights_dir": aux_dir, "micro_batch": 8}, "random, real size"),
        ("lineart", "lineart", {"weights_dir": aux_dir}, "random, real size"),
        ("lineart_coarse", "lineart_coarse", {"weights_dir": aux_dir}, "random, real size"),
        ("mlsd (generic)", "mlsd", {"weights_dir": aux_dir}, "random, real size"),
        ("openpose (body)", "openpose", {"weights_dir": aux_dir}, "random, real size; body net only"),
        ("depth_anything V2-Small", "depth_anything", {"weights_dir": depth_small}, "random, V2-Small size"),
        ("depth_anything tiny", "depth_anything", {"weights_dir": depth_tiny}, "random, tiny: plumbing only"),
    ]


def measure(name: str, options: dict[str, Any], batch: list[Any]) -> dict[str, float]:
    ann = make_annotator(name, **options)
    t0 = time.perf_counter()
    ann.setup()
    setup_s = time.perf_counter() - t0
    ann(batch[:1])  # warm-up: first-call allocations and lazy kernels
    t0 = time.perf_counter()
    ann(batch)
    batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    for item in batch:
        ann([item])
    single = time.perf_counter() - t0
    return {"setup_s": setup_s, "batched_img_s": len(batch) / batched, "single_img_s": len(batch) / single}


def markdown(rows: list[dict[str, Any]], env: dict[str, Any]) -> str:
    lines = [
        "# Condition annotators: images/s at 512x512",
        "",
        f"{env['images']} real photos (scikit-image), batched as the flow calls `annotator(batch)` vs one "
        f"`annotator([image])` at a time; {env['cpus']} CPUs (load average "
        f"{env['load_average']} at the end, this benchmark's own load included), torch threads {env['torch_threads']}. One run each: rough numbers.",
        "Model annotators group a batch by working size and run `micro_batch` images per forward pass: 1 on CPU "
        "(the default; one 512px image already fills the cores), 8 on GPU; the `8 per forward` row shows the CPU cost.",
        "Model rows use random weights in the real file layouts: controlnet_aux models at real size (representative "
        "compute), Depth-Anything-V2 at V2-Small size and as a tiny config (plumbing only). Random weights find no "
        "person, so OpenPose is the body network alone.",
        "",
        "| annotator | weights | batched img/s | one-at-a-time img/s | batched / single | setup s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['label']} | {r['weights']} | {r['batched_img_s']:.2f} | {r['single_img_s']:.2f} | "
                     f"{r['batched_img_s'] / r['single_img_s']:.2f}x | {r['setup_s']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--only", default="", help="comma-separated labels or registry names")
    parser.add_argument("--quick", action="store_true", help="2 images, classical + tiny depth only")
    args = parser.parse_args(argv or [])
    n = 2 if args.quick else args.images
    images = photos(n)
    samples = collage_samples(images)
    import torch

    with tempfile.TemporaryDirectory(prefix="unimontage-bench-") as tmp:
        root = Path(tmp)
        wanted = set(filter(None, args.only.split(",")))
        needs_aux = not args.quick and (not wanted or wanted & {"hed", "lineart", "lineart_coarse", "mlsd", "openpose"})
        aux_dir = write_annotators_dir(root / "Annotators", ("ControlNetHED.pth", "sk_model.pth", "sk_model2.pth",
                                                             "mlsd_large_512_fp32.pth", "body_pose_model.pth")) \
            if needs_aux else root / "Annotators"
        depth_tiny = write_depth_anything_dir(root / "da-tiny", "tiny")
        depth_small = write_depth_anything_dir(root / "da-small", "small") if not args.quick else root / "da-small"
        rows = []
        for label, name, options, note in cases(aux_dir, depth_tiny, depth_small):
            if wanted and label not in wanted and name not in wanted:
                continue
            if args.quick and note not in ("none", "random, tiny: plumbing only"):
                continue
            batch = samples if name == "seg_regions" else images
            result = measure(name, options, batch)
            rows.append({"label": label, "name": name, "weights": note, **result})
            print(f"{label:26s} batched {result['batched_img_s']:8.2f} img/s   "
                  f"single {result['single_img_s']:8.2f} img/s   setup {result['setup_s']:.2f}s", flush=True)

    env = {"images": n, "side": SIDE, "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
           "load_average": ", ".join(f"{x:.1f}" for x in os.getloadavg()), "python": platform.python_version(),
           "torch": torch.__version__, "machine": platform.machine()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    table = markdown(rows, env)
    (RESULTS / "conditions.json").write_text(json.dumps({"env": env, "rows": rows}, indent=2) + "\n")
    print(f"wrote {RESULTS / 'conditions.json'} and {RESULTS / 'conditions.md'}")
    return table


if __name__ == "__main__":
    main(sys.argv[1:])
