"""Image encode/decode for the sample record, and a guarded loader for untrusted files.

Every image that enters a dataset passes through `load_image`, which refuses what would
hurt a worker (decompression bombs, truncated files) and normalises every mode we meet in
the wild (palette, greyscale, 16-bit, CMYK, LA) to 8-bit RGB or RGBA.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageFile

from datagen.portable import portable_cv
from datagen.rejection import Rejected

# A decompression bomb is a small file that decodes to a huge raster. We read the header
# first and refuse anything above this many pixels before any pixel data is decoded.
MAX_PIXELS = 64_000_000
MIN_SIDE = 16

# A truncated file must be an error, never a partly grey image.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageRejected(Rejected):
    """An input image that cannot enter a dataset; `reason` is a stable short code."""



@dataclass(frozen=True)
class LoadedImage:
    pixels: np.ndarray  # HxWx3 or HxWx4 uint8
    source_mode: str  # the file's own mode, e.g. "P", "I;16", "CMYK"
    format: str  # PNG, JPEG, ...

    @property
    def has_alpha(self) -> bool:
        return self.pixels.ndim == 3 and self.pixels.shape[2] == 4


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype in (np.uint16, np.int32, np.int16, np.uint32):
        hi = float(arr.max()) if arr.size else 0.0
        # 16-bit files often use only the low 8/12 bits; scale by the real range so a
        # 12-bit scan does not come out black.
        scale = 255.0 / (65535.0 if hi > 4095 else (4095.0 if hi > 255 else 255.0))
        return np.clip(arr.astype(np.float64) * scale + 0.5, 0, 255).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        return np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    raise ImageRejected("unsupported_mode", f"pixel dtype {arr.dtype}")


def _normalise(img: Image.Image, keep_alpha: bool) -> np.ndarray:
    mode = img.mode
    has_alpha = mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info)
    if mode == "P":
        img = img.convert("RGBA" if has_alpha else "RGB")
    elif mode == "CMYK" or mode == "YCbCr" or mode == "LAB" or mode == "HSV":
        img = img.convert("RGB")
    elif mode == "1":
        img = img.convert("L")
    elif mode == "LA":
        img = img.convert("RGBA")
    elif mode == "RGBa":
        img = img.convert("RGBA")
    arr = _to_uint8(np.asarray(img))
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ImageRejected("unsupported_mode", f"mode {mode} gives shape {arr.shape}")
    if arr.shape[2] == 4 and not keep_alpha:
        arr = arr[:, :, :3]
    return np.ascontiguousarray(arr)


def load_image(
    source: str | Path | bytes,
    *,
    keep_alpha: bool = True,
    max_pixels: int = MAX_PIXELS,
    min_side: int = MIN_SIDE,
) -> LoadedImage:
    """Decode an untrusted image file or buffer to uint8 RGB/RGBA, or raise ImageRejected."""
    try:
        raw = source if isinstance(source, bytes) else Path(source).read_bytes()
    except OSError as exc:
        raise ImageRejected("unreadable", str(exc)) from exc
    if len(raw) == 0:
        raise ImageRejected("empty_file", "zero bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(raw))
            w, h = img.size
            if w * h > max_pixels:
                raise ImageRejected("decompression_bomb", f"{w}x{h} exceeds {max_pixels} pixels")
            fmt = img.format or "unknown"
            source_mode = img.mode
            img.load()
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("decompression_bomb", str(exc)) from exc
    except Exception as exc:  # PIL raises many types for corrupt data
        raise ImageRejected("corrupt_image", f"{type(exc).__name__}: {exc}") from exc
    if min(w, h) < min_side:
        raise ImageRejected("too_small", f"{w}x{h} is below {min_side}px on a side")
    return LoadedImage(_normalise(img, keep_alpha), source_mode, fmt)


# --------------------------------------------------------------------------- encode/decode
# OpenCV's PNG codec is ~3x faster than PIL's at the same compression; level 1 keeps
# files within ~10% of level 6 for photos while encoding several times faster.
PNG_LEVEL = 1


def encode_png(pixels: np.ndarray, level: int = PNG_LEVEL) -> bytes:
    """Lossless PNG of an HxW, HxWx3 (RGB) or HxWx4 (RGBA) uint8 array."""
    if pixels.dtype != np.uint8:
        raise ValueError(f"encode_png wants uint8, got {pixels.dtype}")
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    elif pixels.ndim == 3 and pixels.shape[2] == 4:
        bgr = cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGRA)
    elif pixels.ndim == 2:
        bgr = pixels
    else:
        raise ValueError(f"cannot encode shape {pixels.shape}")
    ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, level])
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def encode_jpeg(pixels: np.ndarray, quality: int = 95) -> bytes:
    """JPEG for photographic frames where exact pixels are not part of the supervision."""
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = pixels[:, :, :3]
    bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR) if pixels.ndim == 3 else pixels
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def encode(pixels: np.ndarray, fmt: str) -> bytes:
    if fmt == "png":
        return encode_png(pixels)
    if fmt == "jpeg":
        return encode_jpeg(pixels)
    raise ValueError(f"unknown image format {fmt!r}")


def decode(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode a stored image: HxW (grey), HxWx3 RGB or HxWx4 RGBA uint8.

    Stored rows come from datasets anyone may hand us, so the header is read first and an
    image above `max_pixels` is refused before its pixels are decoded (a 97 KB PNG can
    hold a 95 MiB raster)."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            w, h = probe.size
    except Exception as exc:
        raise ValueError(f"image bytes do not decode: {type(exc).__name__}") from exc
    if w * h > max_pixels:
        raise ImageRejected("decompression_bomb", f"{w}x{h} exceeds {max_pixels} pixels")
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ValueError("image bytes do not decode")
    if arr.ndim == 3 and arr.shape[2] == 3:
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    if arr.ndim == 3 and arr.shape[2] == 4:
        return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA)
    return arr


ALPHA_POLICIES = ("drop", "white")


def to_rgb(pixels: np.ndarray, alpha: str = "drop") -> np.ndarray:
    """uint8 HxW, HxWx1, HxWx3 or HxWx4 -> contiguous HxWx3, so downstream code can assume RGB.

    `alpha="drop"` keeps the colour channels as stored (scorers, previews, generators);
    `alpha="white"` composites over white, controlnet_aux's convention, so a cutout's
    silhouette becomes an edge rather than whatever colour its transparent pixels hold.
    Anything else raises ImageRejected("unsupported_pixels").
    """
    if alpha not in ALPHA_POLICIES:
        raise ValueError(f"alpha must be one of {ALPHA_POLICIES}, not {alpha!r}")
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
        kind = pixels.dtype if isinstance(pixels, np.ndarray) else type(pixels).__name__
        raise ImageRejected("unsupported_pixels", f"want a uint8 array, got {kind}")
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3, 4):
        raise ImageRejected("unsupported_pixels", f"want HxW, HxWx3 or HxWx4, got shape {pixels.shape}")
    channels = pixels.shape[2]
    if channels == 1:
        return np.ascontiguousarray(np.repeat(pixels, 3, axis=2))
    if channels == 4 and alpha == "white":
        a = pixels[:, :, 3:4].astype(np.float32) / 255.0
        rgb = pixels[:, :, :3].astype(np.float32) * a + 255.0 * (1.0 - a)
        return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(pixels[:, :, :3])


# --------------------------------------------------------------------------- exact resampling
# OpenCV 5's warpAffine computes source coordinates and weights in float32 SIMD (FMA on some
# CPUs, not on others), so its pixels depend on the CPU. These helpers give the same bytes
# everywhere: coordinates come from exact float64 NumPy elementwise operations (no BLAS, no
# fused multiply-add), are rounded to OpenCV's 1/32-pixel fixed-point grid, and `cv2.remap`
# interpolates uint8 pixels with integer weights on its baseline kernels. `upsample_cubic`
# does the same for the smooth float noise the procedural textures are made of.
INTER_TAB_SIZE = 32  # OpenCV's sub-pixel grid for fixed-point remap (INTER_BITS = 5)
_INTERPOLATION = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}


def invert_affine(m) -> np.ndarray:
    """The inverse of a 2x3 affine, in exact scalar float64 arithmetic."""
    (a, b, c), (d, e, f) = (tuple(float(v) for v in row) for row in np.asarray(m, np.float64))
    det = a * e - b * d
    if det == 0.0:
        raise ValueError("affine map is singular")
    ia, ib, id_, ie = e / det, -b / det, -d / det, a / det
    return np.array([[ia, ib, -(ia * c + ib * f)], [id_, ie, -(id_ * c + ie * f)]])


def warp_affine(
    img: np.ndarray,
    m,
    size: tuple[int, int],
    *,
    inverse: bool = False,
    interpolation: str = "linear",
    border: int = cv2.BORDER_CONSTANT,
    value=0,
) -> np.ndarray:
    """`cv2.warpAffine` with bit-exact results on every CPU (uint8 images, <= 4 channels).

    `m` maps source pixel coordinates to destination ones (OpenCV's convention), or the
    other way round with `inverse=True` (= cv2.WARP_INVERSE_MAP). `size` is (width, height).
    """
    if img.dtype != np.uint8:
        raise ValueError(f"warp_affine wants uint8 pixels, got {img.dtype}")
    back = np.asarray(m, np.float64) if inverse else invert_affine(m)
    w, h = size
    xs = np.arange(w, dtype=np.float64)
    ys = np.arange(h, dtype=np.float64)[:, None]
    # Source position x a * x + (b * y + c), in 1/32 pixels (scaling by 32 is exact). Elementwise
    # IEEE operations in a fixed order, no fused multiply-add: the same bits on every CPU.
    (a, b, c), (d, e, f) = (np.asarray(row) * INTER_TAB_SIZE for row in back)
    lim = 32767 * INTER_TAB_SIZE  # int16 map range; beyond it every pixel is border anyway
    map1 = np.empty((h, w, 2), np.int16)
    fixed = []
    for k, (p, q, r) in enumerate(((a, b, c), (d, e, f))):
        t = np.add(xs * p, ys * q + r)
        np.clip(np.rint(t, out=t), -lim, lim, out=t)
        i = t.astype(np.int32)
        map1[:, :, k] = i >> 5
        fixed.append(i & (INTER_TAB_SIZE - 1))
    map2 = (fixed[1] * INTER_TAB_SIZE + fixed[0]).astype(np.uint16)
    if isinstance(value, (int, float)):
        value = (value,) * 4
    # Even with fixed-point maps, remap's bicubic AVX2 kernel rounds unlike the baseline one.
    with portable_cv():
        return cv2.remap(img, map1, map2, _INTERPOLATION[interpolation], borderMode=border, borderValue=value)


def upsample_cubic(grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize (Keys, a = -0.75, edges replicated, as cv2.INTER_CUBIC) of a float
    HxW[xC] array to `size` = (width, height), in float64 with a fixed order of operations."""
    g = np.asarray(grid, np.float64)
    w, h = size
    g = _cubic_axis(g, h, axis=0)
    return _cubic_axis(g, w, axis=1)


def _cubic_axis(g: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    n_in = g.shape[axis]
    x = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    i0 = np.floor(x)
    t = x - i0
    A = -0.75
    u = 1.0 - t
    weights = (
        ((A * (t + 1.0) - 5.0 * A) * (t + 1.0) + 8.0 * A) * (t + 1.0) - 4.0 * A,
        ((A + 2.0) * t - (A + 3.0)) * t * t + 1.0,
        ((A + 2.0) * u - (A + 3.0)) * u * u + 1.0,
        ((A * (u + 1.0) - 5.0 * A) * (u + 1.0) + 8.0 * A) * (u + 1.0) - 4.0 * A,
    )
    shape = [1] * g.ndim
    shape[axis] = n_out
    out = np.zeros(g.shape[:axis] + (n_out,) + g.shape[axis + 1 :])
    for k, wk in enumerate(weights):
        idx = np.clip(i0.astype(np.int64) + (k - 1), 0, n_in - 1)
        out = out + wk.reshape(shape) * np.take(g, idx, axis=axis)
    return out
