"""What "the same bytes on any CPU" costs: each exact path against the fast path it replaced.

    python -m benchmarks.exact_paths [--repeats 5]

Same process, same inputs, best of `--repeats` (a shared 2-core machine: rough). The fast
variants are what the code did before: OpenCV with its runtime-dispatched SIMD kernels and
Intel IPP on its default thread count (`portable_cv` swapped for a no-op), swscale without
its bit-exact flags, `cv2.warpAffine` / float `cv2.resize`. Per-operation rows time one call;
per-product rows time the product's own function on the demo's sources, end to end.
Writes benchmarks/results/exact_paths.json and .md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import skimage.data

from datagen import portable
from datagen.rng import sample_rng

RESULTS = Path(__file__).resolve().parent / "results"


def best_of(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: caches, lazy imports, thread pools
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


@contextlib.contextmanager
def fast_paths():
    """Every datagen module's `portable_cv` replaced by a no-op and swscale's bit-exact flags
    dropped, for the duration: the pre-issue behaviour, to time against."""
    from av.video.reformatter import Interpolation

    from datagen.video import decode

    real = portable.portable_cv
    patched = [m for name, m in sys.modules.items()
               if name.startswith("datagen.") and getattr(m, "portable_cv", None) is real]  # fmt: skip
    exact = decode.EXACT_SCALE
    for m in patched:
        m.portable_cv = contextlib.nullcontext
    decode.EXACT_SCALE = Interpolation.AREA
    try:
        yield
    finally:
        for m in patched:
            m.portable_cv = real
        decode.EXACT_SCALE = exact


# --------------------------------------------------------------------------- operations
def operations(tmp: Path, repeats: int) -> list[dict]:
    from datagen.conditions.lineart_standard import lineart_standard_map
    from datagen.images import upsample_cubic, warp_affine
    from datagen.scoring.geometry import pair_geometry
    from datagen.video import synthetic
    from datagen.video.decode import read_frames, sample_times
    from datagen.video.motion import estimate_motion, work_size
    from datagen.video.probe import probe

    astro = skimage.data.astronaut()
    rgba = np.dstack([astro, np.full(astro.shape[:2], 255, np.uint8)])
    m = cv2.getRotationMatrix2D((255.5, 255.5), 23.0, 1.0)
    grid = np.random.default_rng(0).random((16, 16), dtype=np.float32)
    canvas = synthetic.mosaic(1024, 1024)
    clip = synthetic.camera_clip(tmp / "pan.mp4", canvas, synthetic.glide(synthetic.Pose(400, 400, 1.0),
                                                                          synthetic.Pose(620, 480, 1.0), 125),
                                 (1280, 720), 25)  # fmt: skip
    info = probe(clip)
    times = sample_times(info.duration, 2.0)
    work = work_size(info.width, info.height)
    frames = [f.pixels for f in read_frames(info, times[:2], size=work, grey=True)]
    left, right = skimage.data.stereo_motorcycle()[:2]

    cases = [
        ("rotate an RGBA cutout (512 px)", "cv2.warpAffine", "warp_affine (fixed-point remap)",
         lambda: cv2.warpAffine(rgba, m, (724, 724), flags=cv2.INTER_LINEAR), lambda: warp_affine(rgba, m, (724, 724))),
        ("bicubic noise upsample (16 -> 640 px)", "cv2.resize float", "upsample_cubic (float64 NumPy)",
         lambda: cv2.resize(grid, (640, 640), interpolation=cv2.INTER_CUBIC), lambda: upsample_cubic(grid, (640, 640))),
        ("decode 720p H.264, 2 fps -> 320 px grey", "swscale AREA", "swscale AREA + BITEXACT + ACCURATE_RND",
         "decode_grey", "decode_grey"),
        ("decode 720p H.264, 2 fps -> RGB 720p", "swscale", "swscale BITEXACT + ACCURATE_RND", "decode_rgb", "decode_rgb"),
        ("motion of one pair (DIS, 320 px)", "dispatched kernels", "portable_cv",
         lambda: estimate_motion(*frames), lambda: estimate_motion(*frames)),
        ("geometric consistency, one pair (SIFT + MAGSAC)", "dispatched, 2 threads", "portable_cv (1 thread)",
         lambda: pair_geometry(left, right), lambda: pair_geometry(left, right)),
        ("lineart_standard (512 px)", "dispatched float blur", "portable_cv",
         lambda: lineart_standard_map(astro), lambda: lineart_standard_map(astro)),
    ]  # fmt: skip
    decoders = {
        "decode_grey": lambda: sum(1 for _ in read_frames(info, times, size=work, grey=True)),
        "decode_rgb": lambda: sum(1 for _ in read_frames(info, times)),
    }
    rows = []
    for label, fast_name, exact_name, fast, exact in cases:
        fast, exact = decoders.get(fast, fast), decoders.get(exact, exact)
        with fast_paths():
            t_fast = best_of(fast, repeats)
        t_exact = best_of(exact, repeats)
        rows.append({"what": label, "fast": fast_name, "exact": exact_name, "fast_ms": 1000 * t_fast,
                     "exact_ms": 1000 * t_exact, "ratio": t_exact / t_fast})  # fmt: skip
        print(f"{label:50s} {1000 * t_fast:9.2f} ms -> {1000 * t_exact:9.2f} ms  x{t_exact / t_fast:.2f}", flush=True)
    return rows


# --------------------------------------------------------------------------- products
def products(tmp: Path, repeats: int) -> list[dict]:
    """Each product's own function on the demo's sources (a slice of them), fast vs exact."""
    from datagen.collage import CollageSpec, generate
    from datagen.collage.tasks import TASKS
    from datagen.conditions import make_annotator
    from datagen.multiview import MultiviewConfig, multiview_samples
    from datagen.multiview.synthetic import make_demo_captures
    from datagen.scoring import DiversityScorer, ExposureScorer, GeometricConsistencyScorer, SharpnessScorer
    from datagen.storyboard import CascadeFaceDetector, FaceFilter, StoryboardConfig, storyboard_from_keyframes
    from datagen.storyboard.demo_video import make_storyboard_clip
    from datagen.video import VideoPairConfig, make_demo_clips, process_video
    from datagen.video.keyframes import frames_with_shots

    clips = make_demo_clips(tmp / "videos", seed=0)
    story = make_storyboard_clip(tmp / "story", seed=0)
    captures = make_demo_captures(tmp / "captures", seed=0, n_views=8, objects=("toy",))
    images = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    annotators = [make_annotator(k) for k in ("canny", "lineart_standard")]
    scorers = [SharpnessScorer(), ExposureScorer(), GeometricConsistencyScorer(), DiversityScorer()]
    detector = CascadeFaceDetector()

    def collage():
        for i, task in enumerate(TASKS):
            generate(CollageSpec(task=task, size=256), sample_rng(0, i))

    def conditions():
        for a in annotators:
            a(images)

    def multiview():
        multiview_samples(captures[0], MultiviewConfig(samples_per_capture=3), sample_rng(0, 0), scorers=scorers)

    def video_pairs():
        for k, path in enumerate(clips):
            process_video(path, VideoPairConfig(), sample_rng(0, k))

    def storyboard():
        shots = frames_with_shots(story, max_side=512)
        storyboard_from_keyframes(shots.frames, shots.shot_ids, StoryboardConfig(), sample_rng(0, 0), source="demo",
                                  times=shots.times, face_detector=detector, reference_filters=[FaceFilter(detector)],
                                  scorers=scorers[:1])  # fmt: skip

    cases = [("collage (17 tasks, 256 px)", collage), ("conditions (canny + lineart, 4 photos)", conditions),
             ("multiview (1 capture, 3 samples, 4 scorers)", multiview), ("video pairs (6 demo clips)", video_pairs),
             ("storyboard (1 demo clip: decode, cuts, faces)", storyboard)]  # fmt: skip
    rows = []
    for label, fn in cases:
        with fast_paths():
            t_fast = best_of(fn, repeats)
        t_exact = best_of(fn, repeats)
        rows.append({"what": label, "fast_s": t_fast, "exact_s": t_exact, "ratio": t_exact / t_fast})
        print(f"{label:50s} {t_fast:8.3f} s -> {t_exact:8.3f} s  x{t_exact / t_fast:.2f}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv or [])
    cv2.setNumThreads(2)
    with tempfile.TemporaryDirectory(prefix="unimontage-exact-") as tmp:
        ops = operations(Path(tmp), args.repeats)
        prods = products(Path(tmp), max(2, args.repeats // 2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "exact_paths.json").write_text(json.dumps({"operations": ops, "products": prods}, indent=1))
    md = [
        "## Cost of the exact paths (same bytes on any CPU)",
        "",
        "Each exact path against the fast path it replaced, same process and inputs, best of "
        f"{args.repeats} ({max(2, args.repeats // 2)} for products). Fast = OpenCV's dispatched SIMD kernels "
        "and IPP on 2 threads, swscale without bit-exact flags, `cv2.warpAffine`/float `cv2.resize`; "
        "exact = what the code does now (`datagen.portable.portable_cv`, swscale `BITEXACT | ACCURATE_RND`, "
        "`images.warp_affine`, `images.upsample_cubic`). 2 shared cores: rough.",
        "",
        "| operation | fast | exact | fast ms | exact ms | exact / fast |",
        "|---|---|---|---:|---:|---:|",
        *[f"| {r['what']} | {r['fast']} | {r['exact']} | {r['fast_ms']:.2f} | {r['exact_ms']:.2f} | {r['ratio']:.2f} |"
          for r in ops],
        "",
        "| product function (demo sources) | fast s | exact s | exact / fast |",
        "|---|---:|---:|---:|",
        *[f"| {r['what']} | {r['fast_s']:.3f} | {r['exact_s']:.3f} | {r['ratio']:.2f} |" for r in prods],
    ]  # fmt: skip
    text = "\n".join(md) + "\n"
    (RESULTS / "exact_paths.md").write_text(text)
    return text


if __name__ == "__main__":
    print(main(sys.argv[1:]))
