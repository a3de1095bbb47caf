"""Which SIMD code paths the native libraries may take, and how to pin them lower.

The promise "same config + seed + code -> same content hash on any CPU" is tested by running
the products twice: once as this machine allows, once with every library's CPU dispatch
restricted to its baseline, and comparing hashes (tests/test_same_bytes_any_cpu.py; the
multi-node cluster test starts one Ray node with the same environment). Each library has
its own switch, all read from the environment at start-up, so they also reach Ray worker
processes (which inherit the environment of the node that starts them):

| library | switch | restricted value |
|---|---|---|
| OpenCV universal intrinsics | `OPENCV_CPU_DISABLE` | every feature above its SSE3 baseline |
| OpenCV's Intel IPP | `OPENCV_IPP` | `sse42` |
| NumPy | `NPY_DISABLE_CPU_FEATURES` | everything above its x86-64-v2 baseline |
| OpenBLAS (NumPy, SciPy, OpenCV) | `OPENBLAS_CORETYPE` | `Nehalem` (SSE4.2 kernels) |
| PyTorch ATen / MKL / oneDNN | `ATEN_CPU_CAPABILITY`, `MKL_ENABLE_INSTRUCTIONS`, `ONEDNN_MAX_CPU_ISA` | `default`, `SSE4_2`, `SSE41` |
| libjpeg-turbo (OpenCV, Pillow) | `JSIMD_FORCENONE` | `1` (plain C) |
| glibc libm / string ifuncs | `GLIBC_TUNABLES=glibc.cpu.hwcaps=...` | no AVX, AVX2, FMA, AVX-512 |
| FFmpeg (PyAV's and OpenCV's libavutil) | `UNIMONTAGE_AV_CPU_FLAGS` (ours) | `0` (plain C) |
| libx264 (its own CPU detection) | `UNIMONTAGE_X264_ASM` (ours) | `0` (plain C) |

FFmpeg has no environment switch of its own, so `apply_av_cpu_flags()` - called when a
module that decodes or encodes video is imported, before any codec or scaler is opened -
reads ours and calls `av_force_cpu_flags` in every libavutil the process has loaded.
Without the variable it does nothing. libx264 detects the CPU itself, ignoring FFmpeg's flags:
`x264_test_params()` turns ours into its `asm=` parameter for the encoders we run.

Not restrictable from outside: Embree inside Mitsuba picks its kernels by CPUID, so the
multiview demo renderer avoids Embree's triangle kernels (see `multiview/synthetic.py`).
"""

from __future__ import annotations

import ctypes
import glob
import os
from pathlib import Path

AV_FLAGS_ENV = "UNIMONTAGE_AV_CPU_FLAGS"
X264_ASM_ENV = "UNIMONTAGE_X264_ASM"

# OpenCV's own feature names (`cv2.getCPUFeaturesLine()`; "SSE4_1" is not one, it is ignored
# with a warning) -> the /proc/cpuinfo flag that says the CPU has it. OpenCV cannot disable
# its compile-time baseline (SSE, SSE2, SSE3 in the pip wheels) and warns about features the
# CPU lacks, so only present ones are listed.
OPENCV_ABOVE_BASELINE = {"SSSE3": "ssse3", "SSE4.1": "sse4_1", "SSE4.2": "sse4_2", "POPCNT": "popcnt", "AVX": "avx",
                         "FP16": "f16c", "FMA3": "fma", "AVX2": "avx2", "AVX512F": "avx512f", "AVX512-SKX": "avx512bw"}
# NumPy 2.4 on x86-64 is built for x86-64-v2 and dispatches v3 (AVX2, FMA) and v4 (AVX-512).
NUMPY_ABOVE_BASELINE = ("X86_V3", "X86_V4", "AVX512_ICL", "AVX512_SPR")
GLIBC_HWCAPS_OFF = ("AVX", "AVX2", "FMA", "FMA4", "AVX512F", "AVX512DQ", "AVX512BW", "AVX512VL", "AVX512CD",
                    "AVX_VNNI", "F16C", "BMI1", "BMI2", "LZCNT", "MOVBE", "ERMS", "FSRM", "POPCNT")


def restricted_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) plus every switch set to its lowest level.

    Use it for anything that must run on "a lesser CPU": a product run in a subprocess, or a
    Ray node (`ray start ...` with this environment; its workers inherit it).
    """
    env = dict(os.environ if base is None else base)
    env.update({
        "OPENCV_CPU_DISABLE": ",".join(k for k, flag in OPENCV_ABOVE_BASELINE.items() if _cpu_has(flag)),
        "OPENCV_IPP": "sse42",
        "NPY_DISABLE_CPU_FEATURES": " ".join(NUMPY_ABOVE_BASELINE),
        "OPENBLAS_CORETYPE": "Nehalem",
        "ATEN_CPU_CAPABILITY": "default",
        "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
        "ONEDNN_MAX_CPU_ISA": "SSE41",
        "JSIMD_FORCENONE": "1",
        "GLIBC_TUNABLES": "glibc.cpu.hwcaps=" + ",".join("-" + f for f in GLIBC_HWCAPS_OFF),
        AV_FLAGS_ENV: "0",
        X264_ASM_ENV: "0",
    })  # fmt: skip
    return env


def _cpu_has(flag: str) -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True  # not Linux: name everything, OpenCV only warns about what it cannot disable
    line = next((ln for ln in text.splitlines() if ln.startswith(("flags", "Features"))), "")
    return flag in line.split()


# --------------------------------------------------------------------------- FFmpeg
def _avutil_paths() -> list[str]:
    """libavutil files shipped inside PyAV's and OpenCV's wheels (auditwheel/delocate layouts)."""
    roots = []
    for module in ("av", "cv2"):
        try:
            spec = __import__(module)
        except ImportError:
            continue
        pkg = Path(spec.__file__).resolve().parent
        roots += [pkg.parent / f"{pkg.name}.libs", pkg, pkg / ".dylibs", pkg.parent / "opencv_python_headless.libs",
                  pkg.parent / "opencv_python.libs"]
    paths: list[str] = []
    for root in roots:
        for p in sorted(glob.glob(str(root / "libavutil*"))):
            if p not in paths:
                paths.append(p)
    return paths


_applied: int | None = None


def apply_av_cpu_flags() -> int | None:
    """Force FFmpeg's CPU flags from `UNIMONTAGE_AV_CPU_FLAGS` (an int mask, 0 = plain C).

    Idempotent and free when the variable is unset. Raises when it is set but no libavutil
    can be found: a test that believes FFmpeg is restricted must never run unrestricted.
    """
    global _applied
    value = os.environ.get(AV_FLAGS_ENV)
    if value is None or _applied is not None:
        return _applied
    flags = int(value, 0)
    paths = _avutil_paths()
    if not paths:
        raise RuntimeError(f"{AV_FLAGS_ENV} is set but no libavutil was found beside PyAV or OpenCV")
    for p in paths:
        lib = ctypes.CDLL(p)  # the copy already loaded by av / cv2: dlopen returns its handle
        lib.av_force_cpu_flags.argtypes = [ctypes.c_int]
        lib.av_force_cpu_flags(flags)
    _applied = flags
    return flags


def x264_test_params() -> list[str]:
    """Extra x264 parameters from `UNIMONTAGE_X264_ASM` (e.g. ["asm=0"]); [] when unset."""
    value = os.environ.get(X264_ASM_ENV)
    return [] if value is None else [f"asm={value}"]


def av_cpu_flags() -> dict[str, int]:
    """`av_get_cpu_flags()` of every libavutil found, by file name."""
    out = {}
    for p in _avutil_paths():
        lib = ctypes.CDLL(p)
        lib.av_get_cpu_flags.restype = ctypes.c_int
        out[Path(p).name] = int(lib.av_get_cpu_flags())
    return out


# --------------------------------------------------------------------------- report
def capabilities(with_torch: bool = True) -> dict:
    """What each library reports it dispatches to in this process: the proof a restriction
    took effect (the restricted-CPU test compares it with an unrestricted process)."""
    import cv2
    import numpy as np

    apply_av_cpu_flags()
    # "*NAME" = dispatched at run time, "*NAME?" = compiled in but not used on this CPU/setting.
    line = cv2.getCPUFeaturesLine().split()
    dispatched = [f[1:] for f in line if f.startswith("*") and not f.endswith("?")]
    from numpy._core import _multiarray_umath as umath

    out = {
        "opencv": {"dispatched": dispatched, "ipp": bool(cv2.ipp.useIPP()), "ipp_version": cv2.ipp.getIppVersion()},
        "numpy": {k: bool(v) for k, v in umath.__cpu_features__.items() if k.startswith(("X86_V", "AVX512_"))},
        "openblas": _openblas_cores(np),
        "ffmpeg": av_cpu_flags(),
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
        "jsimd_forcenone": os.environ.get("JSIMD_FORCENONE", ""),
        "x264_params": x264_test_params(),
    }
    if with_torch:
        import torch

        out["torch"] = torch.backends.cpu.get_cpu_capability()
    return out


def _openblas_cores(np) -> list[str]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return sorted({str(i.get("architecture")) for i in threadpool_info() if i.get("internal_api") == "openblas"})
