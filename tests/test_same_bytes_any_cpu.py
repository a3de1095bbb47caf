"""Same bytes on any CPU: all six products made from scratch twice - as this CPU allows, and
with every library's SIMD dispatch pinned to its baseline - must have equal content hashes,
equal to the recorded golden hashes.

Both runs are fresh interpreters (`benchmarks.same_bytes`), started at once, each making the
sources (x264 and MPEG-4 clips, Mitsuba captures) and running the six CLI commands on its
own local Ray; they share the session's Prefect server. The demo-sized version of the same
check is in `make bench` (benchmarks/same_bytes.py). Golden hashes: tests/data/golden_hashes.json,
re-recorded only after a deliberate content change with `python -m benchmarks.same_bytes
record-golden` (and the reason in the commit).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from benchmarks import same_bytes
from datagen import cpu_features, portable
from datagen.images import upsample_cubic, warp_affine
from datagen.schema import quantize, quantize_box, quantize_tree


# --------------------------------------------------------------------------- the two runs
@pytest.fixture(scope="module")
def runs(tmp_path_factory, prefect_harness):
    from prefect.settings import PREFECT_API_URL

    root = tmp_path_factory.mktemp("same-bytes")
    api = PREFECT_API_URL.value()
    fast = same_bytes.launch(root / "fast", "small", restricted=False, prefect_api=api)
    fast.wait_for_ray()
    restricted = same_bytes.launch(root / "restricted", "small", restricted=True, prefect_api=api)
    reports = {"fast": fast.wait(timeout=900), "restricted": restricted.wait(timeout=900)}
    products = {k: same_bytes.read_products(run.root / "data") for k, run in (("fast", fast), ("restricted", restricted))}
    sources = {k: same_bytes.source_digests(run.root) for k, run in (("fast", fast), ("restricted", restricted))}
    return reports, products, sources


def test_the_restriction_took_effect(runs):
    """Each switch reached its library, inside the process that made the data."""
    reports, _, _ = runs
    caps = reports["restricted"]["capabilities"]
    assert caps["opencv"]["dispatched"] == [], caps["opencv"]
    assert "SSE4.2" in caps["opencv"]["ipp_version"] or "y8" in caps["opencv"]["ipp_version"], caps["opencv"]
    assert caps["numpy"]["X86_V3"] is False and caps["numpy"]["X86_V4"] is False, caps["numpy"]
    assert caps["openblas"] and set(caps["openblas"]) == {"Nehalem"}, caps["openblas"]
    assert caps["ffmpeg"] and set(caps["ffmpeg"].values()) == {0}, caps["ffmpeg"]
    assert caps["torch"] == "DEFAULT"
    assert "-AVX2" in caps["glibc_tunables"] and caps["jsimd_forcenone"] == "1" and caps["x264_params"] == ["asm=0"]
    fast = reports["fast"]["capabilities"]
    if cpu_features._cpu_has("avx2"):  # on this machine the unrestricted run really used more
        assert "AVX2" in fast["opencv"]["dispatched"] and fast["numpy"]["X86_V3"] and fast["torch"] == "AVX2"
        assert all(v != 0 for v in fast["ffmpeg"].values())


def test_restricted_and_unrestricted_runs_make_the_same_bytes(runs):
    _, products, sources = runs
    assert sources["fast"] == sources["restricted"], [k for k in sources["fast"]
                                                      if sources["fast"][k] != sources["restricted"].get(k)]
    report = same_bytes.diff_products(products["fast"], products["restricted"])
    for name, p in products["fast"].items():
        assert p["rows"], f"{name}: no rows, nothing was compared"
        assert p["content_hash"] == p["recomputed"], f"{name}: recorded hash does not match the rows"
    assert all(r["equal"] and r["rejects_equal"] for r in report.values()), same_bytes.summary(report)


def test_golden_hashes(runs):
    """A fresh run equals the recorded hashes. On a mismatch: if the content changed on
    purpose, re-record (`python -m benchmarks.same_bytes record-golden`) and explain why in
    the commit; otherwise some path depends on the machine - a bug to fix, not a hash to update."""
    _, products, _ = runs
    got = {name: p["content_hash"] for name, p in products["fast"].items()}
    want = same_bytes.golden("small")
    assert got == want, {name: (got[name][:16], want.get(name, "")[:16]) for name in got if got[name] != want.get(name)}


# --------------------------------------------------------------------------- the tools
def test_quantize_is_idempotent_and_absorbs_last_bit_noise():
    rng = np.random.default_rng(0)
    for x in np.concatenate([rng.normal(0, 1, 500), rng.normal(0, 1e4, 500), rng.normal(0, 1e-5, 500)]):
        q = quantize(x)
        assert quantize(q) == q and abs(q - x) <= 5e-6 * abs(x) + 1e-9
        assert quantize(np.nextafter(x, np.inf)) == q or quantize(np.nextafter(x, -np.inf)) == q
    assert quantize(8.95464379532516) == quantize(8.954643656157579) == 8.95464  # the motion_px
    assert quantize(1e-17) == quantize(-1e-17) == 0.0 and str(quantize(-1e-17)) == "0.0"
    assert quantize_box((1 / 3, 0.0, 2 / 3, 1.0)) == (0.333333, 0.0, 0.666667, 1.0)
    assert quantize_tree({"a": [0.1 + 0.2, 3, True, "x"], "b": np.float32(1.5)}) == {"a": [0.3, 3, True, "x"], "b": 1.5}


def test_portable_cv_restores_opencv_settings_and_nests():
    before = (cv2.useOptimized(), cv2.ipp.useIPP(), cv2.getNumThreads())
    with portable.portable_cv():
        with portable.portable_cv():
            assert not cv2.useOptimized() and not cv2.ipp.useIPP() and cv2.getNumThreads() == 1
        assert not cv2.useOptimized()  # the inner exit does not end the mode
    assert (cv2.useOptimized(), cv2.ipp.useIPP(), cv2.getNumThreads()) == before


def test_exact_resampling_matches_opencv_semantics():
    img = cv2.resize(skimage.data.astronaut(), (128, 96), interpolation=cv2.INTER_AREA)
    m = cv2.getRotationMatrix2D((60.5, 40.0), 17.0, 1.2)
    ours, theirs = warp_affine(img, m, (140, 110)), cv2.warpAffine(img, m, (140, 110), flags=cv2.INTER_LINEAR)
    # Same geometry; only OpenCV's float rounding vs our 1/32-pixel fixed point differs.
    assert np.abs(ours.astype(int) - theirs).mean() < 1.0
    assert np.array_equal(warp_affine(img, np.float64([[1, 0, 0], [0, 1, 0]]), (128, 96)), img)
    grid = np.random.default_rng(2).random((8, 8), dtype=np.float32)
    up = upsample_cubic(grid, (64, 64))
    assert np.abs(up - cv2.resize(grid, (64, 64), interpolation=cv2.INTER_CUBIC)).max() < 1e-5


def test_small_linear_algebra_without_blas():
    a = np.random.default_rng(3).normal(size=(3, 3))
    b = np.random.default_rng(4).normal(size=(3, 2))
    assert np.allclose(portable.matmul(a, b), a @ b, rtol=0, atol=1e-12)
    assert np.allclose(portable.matmul(a, b[:, 0]), a @ b[:, 0], rtol=0, atol=1e-12)
    t = np.linspace(0, 7, 50)
    assert np.allclose(portable.sin(t), np.sin(t), atol=1e-15) and np.allclose(portable.cos(t), np.cos(t), atol=1e-15)
