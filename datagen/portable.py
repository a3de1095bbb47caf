"""Numerics that give the same bits on any x86-64 CPU, whatever SIMD it has.

Three tools, used wherever a float computation decides something or ends up stored:

- `portable_cv()`: while any thread is inside it, OpenCV runs its baseline code (no runtime
  dispatch to SSE4/AVX/AVX2/AVX-512 kernels, no Intel IPP) on one thread. Dispatched float
  kernels (DIS optical flow, SIFT, Gaussian blur and warps of floats, corner eigenvalues,
  DFT) round differently with FMA and wider vectors, and SIFT on several threads even
  varies run to run; the baseline kernels are one fixed instruction stream. Measured cost
  (2-core AVX2 machine): DIS motion per pair ~1.0x, SIFT ~1.2x, float Gaussian ~2x.
- `fsum_dot`, `matmul`: small linear algebra without BLAS (OpenBLAS and MKL pick FMA
  kernels by CPU): products are exact IEEE operations, sums are `math.fsum` (correctly
  rounded, so independent of order).
- `sin`, `cos`: elementwise through the C library instead of NumPy's SIMD loops (NumPy 2
  has AVX2 and AVX-512/SVML kernels for these that differ in the last bits).

What they do not cover, and why `schema.quantize` still rounds every stored float: ARM
(NEON baseline code is another instruction stream) and other builds of the libraries.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import cv2
import numpy as np

_lock = threading.Lock()
_depth = 0
_saved: tuple[bool, bool, int] | None = None


@contextmanager
def portable_cv() -> Iterator[None]:
    """OpenCV on its baseline code path, without IPP, single-threaded, while inside.

    Re-entrant and thread-safe: the process-wide settings are changed by the first entry
    and restored by the last exit, so no thread leaves the mode while another is inside.
    """
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = (cv2.useOptimized(), cv2.ipp.useIPP(), cv2.getNumThreads())
            cv2.setUseOptimized(False)
            cv2.ipp.setUseIPP(False)
            cv2.setNumThreads(1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                optimized, ipp, threads = _saved
                cv2.setUseOptimized(optimized)
                cv2.ipp.setUseIPP(ipp)
                cv2.setNumThreads(threads)
                _saved = None


def fsum_dot(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """sum(a * b), correctly rounded: the same on every CPU."""
    return math.fsum((np.asarray(a, np.float64) * np.asarray(b, np.float64)).ravel().tolist())


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b for small float64 matrices (or a matrix and a vector) without BLAS."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    vec = b.ndim == 1
    b2 = b[:, None] if vec else b
    out = np.array([[fsum_dot(a[i], b2[:, j]) for j in range(b2.shape[1])] for i in range(a.shape[0])])
    return out[:, 0] if vec else out


def sin(x) -> np.ndarray:
    return np.vectorize(math.sin, otypes=[np.float64])(np.asarray(x, np.float64))


def cos(x) -> np.ndarray:
    return np.vectorize(math.cos, otypes=[np.float64])(np.asarray(x, np.float64))
