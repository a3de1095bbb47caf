"""The embedded default asset pack, built offline from scikit-image's photos and code.

Backgrounds: photo crops, plain colours, gradients and procedural textures. Cutouts:
objects segmented out of the photos with classical methods (GrabCut seeded by hand-drawn
sure/maybe polygons, thresholds, known silhouettes) and the procedural stickers. Nothing
is downloaded; the build is deterministic (OpenCV's RNG is seeded before each GrabCut)
and takes about a second, so it is memoised per process rather than cached on disk.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from datagen.collage import palette, stickers
from datagen.collage.pack import Asset, AssetPack
from datagen.images import upsample_cubic
from datagen.portable import portable_cv

LABEL = "starter@1"


def _sk(name: str) -> np.ndarray:
    import skimage.data

    img = getattr(skimage.data, name)()
    img = img[0] if isinstance(img, tuple) else img
    if img.dtype == bool:
        return img
    return np.ascontiguousarray(np.dstack([img] * 3) if img.ndim == 2 else img[:, :, :3])


def _bg(item: str, name: str, pixels: np.ndarray, origin: str = "") -> Asset:
    return Asset(f"{LABEL}:background/{item}", "background", name, np.ascontiguousarray(pixels), origin)


def _cut(item: str, name: str, rgb: np.ndarray, alpha: np.ndarray, origin: str = "") -> Asset:
    ys, xs = np.nonzero(alpha)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    rgba = np.dstack([rgb[y0:y1, x0:x1], alpha[y0:y1, x0:x1]])
    return Asset(f"{LABEL}:cutout/{item}", "cutout", name, np.ascontiguousarray(rgba), origin)


# --------------------------------------------------------------------------- backgrounds
def _tint(grey: np.ndarray, rgb) -> np.ndarray:
    return (grey.astype(np.float32) * (np.asarray(rgb, np.float32) / 255.0)).clip(0, 255).astype(np.uint8)


def _photo_backgrounds() -> list[Asset]:
    return [
        _bg("astronaut", "astronaut portrait photo", _sk("astronaut"), "skimage:astronaut"),
        _bg("coffee", "espresso cup photo", _sk("coffee"), "skimage:coffee"),
        _bg("chelsea", "tabby cat photo", _sk("chelsea"), "skimage:chelsea"),
        _bg("rocket", "rocket launch pad at dusk", _sk("rocket"), "skimage:rocket"),
        _bg("motorcycle", "garage photo", _sk("stereo_motorcycle"), "skimage:motorcycle"),
        _bg("hubble", "deep space photo", _sk("hubble_deep_field"), "skimage:hubble"),
        _bg("tissue", "microscope slide", _sk("immunohistochemistry"), "skimage:immunohistochemistry"),
        _bg("cameraman", "black and white photo of a cameraman", _sk("camera"), "skimage:camera"),
        _bg("brick", "red brick wall", _tint(_sk("brick"), (255, 150, 110)), "skimage:brick"),
        _bg("grass", "grass texture", _tint(_sk("grass"), (150, 255, 120)), "skimage:grass"),
        _bg("gravel", "gravel texture", _sk("gravel"), "skimage:gravel"),
        _bg("moon", "lunar surface", _sk("moon"), "skimage:moon"),
    ]


def _procedural_backgrounds(side: int = 640) -> list[Asset]:
    c = palette.BACKGROUNDS
    out = [_bg(f"plain_{n.replace(' ', '_')}", f"plain {n} background", np.full((side, side, 3), c[n], np.uint8))
           for n in ("light grey", "beige", "light blue", "pale green", "lavender", "dark grey", "navy")]
    t = np.linspace(0.0, 1.0, side, dtype=np.float32)[:, None, None]
    for a, b in (("light blue", "white"), ("cream", "beige"), ("navy", "light blue"), ("pale green", "cream"),
                 ("lavender", "light grey")):
        ramp = np.asarray(c[a], np.float32) + t * (np.asarray(c[b], np.float32) - np.asarray(c[a], np.float32))
        pixels = np.broadcast_to(np.round(ramp).astype(np.uint8), (side, side, 3))
        out.append(_bg(f"gradient_{a}_{b}".replace(" ", "_"), f"{a} to {b} gradient", pixels))
    yy, xx = np.mgrid[0:side, 0:side]
    check = ((yy // 64 + xx // 64) % 2).astype(bool)
    out.append(_bg("checkerboard", "checkerboard pattern",
                   np.where(check[:, :, None], c["light blue"], c["cream"]).astype(np.uint8)))
    stripes = ((xx + yy) // 40 % 2).astype(bool)
    out.append(_bg("stripes", "diagonal striped pattern",
                   np.where(stripes[:, :, None], c["lavender"], c["cream"]).astype(np.uint8)))
    dots = ((xx % 80 - 40) ** 2 + (yy % 80 - 40) ** 2) < 14 ** 2
    out.append(_bg("polka_dots", "polka dot pattern",
                   np.where(dots[:, :, None], c["pale green"], c["beige"]).astype(np.uint8)))
    # Smooth "cloud" noise from a fixed seed: upsampled random grids at a few octaves.
    rng = np.random.default_rng(20240521)
    # upsample_cubic, not cv2.resize: OpenCV's float bicubic rounds differently per SIMD level.
    noise = sum(upsample_cubic(rng.random((n, n), dtype=np.float32), (side, side)) / n for n in (4, 8, 16, 32))
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    sky = np.asarray(c["light blue"], np.float32) * (1 - noise[:, :, None]) + 250.0 * noise[:, :, None]
    out.append(_bg("clouds", "cloudy sky texture", sky.clip(0, 255).astype(np.uint8)))
    return out


# --------------------------------------------------------------------------- photo cutouts
def _grabcut(rgb: np.ndarray, maybe, sure, fill_holes: bool, scale: float = 0.5) -> np.ndarray:
    """Foreground alpha of `rgb`: outside `maybe` is background, inside `sure` polygons is foreground."""
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (int(round(w * scale)), int(round(h * scale))), interpolation=cv2.INTER_AREA)
    seed = np.full(small.shape[:2], cv2.GC_BGD, np.uint8)
    cv2.fillPoly(seed, [np.round(np.asarray(maybe) * scale).astype(np.int32)], cv2.GC_PR_FGD)
    for poly in sure:
        cv2.fillPoly(seed, [np.round(np.asarray(poly) * scale).astype(np.int32)], cv2.GC_FGD)
    cv2.setRNGSeed(0)  # GrabCut seeds its colour models with k-means++ from OpenCV's RNG
    bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.grabCut(cv2.cvtColor(small, cv2.COLOR_RGB2BGR), seed, None, bgd, fgd, 3, cv2.GC_INIT_WITH_MASK)
    fg = np.where((seed == cv2.GC_FGD) | (seed == cv2.GC_PR_FGD), 255, 0).astype(np.uint8)
    fg = _largest(fg, fill_holes)
    fg = cv2.resize(fg, (w, h), interpolation=cv2.INTER_LINEAR)
    return _feather(fg)


def _largest(mask: np.ndarray, fill_holes: bool) -> np.ndarray:
    """Keep the largest blob; optionally fill its holes (a helmet ring is not see-through)."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    best = max(contours, key=cv2.contourArea)
    out = np.zeros_like(mask)
    cv2.drawContours(out, [best], -1, 255, -1)
    return out if fill_holes else np.minimum(out, mask)


def _feather(mask: np.ndarray, sigma: float = 0.8) -> np.ndarray:
    """Soften a hard mask into an anti-aliased alpha without moving its edge (no faint haze)."""
    soft = cv2.GaussianBlur(mask, (0, 0), sigma)
    soft[soft < 8] = 0
    soft[soft > 247] = 255
    return soft


def _disc(h: int, w: int, cx: float, cy: float, r: float) -> np.ndarray:
    m = np.zeros((h * 4, w * 4), np.uint8)  # drawn at 4x, averaged down: an anti-aliased edge
    cv2.circle(m, (int(cx * 4), int(cy * 4)), int(r * 4), 255, -1)
    return cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA)


def _oval(h: int, w: int, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    m = np.zeros((h * 4, w * 4), np.uint8)
    cv2.ellipse(m, (int(cx * 4), int(cy * 4)), (int(rx * 4), int(ry * 4)), 0, 0, 360, 255, -1)
    return cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA)


def _photo_cutouts() -> list[Asset]:
    astro, coffee, rocket = _sk("astronaut"), _sk("coffee"), _sk("rocket")
    out = [
        _cut("astronaut", "astronaut", astro, _grabcut(
            astro, [(10, 512), (10, 300), (70, 240), (115, 165), (150, 148), (180, 150), (178, 125), (150, 110),
                    (145, 40), (200, 8), (290, 20), (298, 100), (270, 128), (262, 160), (300, 176), (360, 230),
                    (372, 512)],
            [[(180, 60), (270, 60), (270, 150), (180, 150)], [(60, 300), (250, 290), (260, 500), (60, 500)],
             [(165, 152), (255, 152), (300, 230), (290, 265), (130, 265), (125, 220)]],  # the dark neck ring is part of the suit
            fill_holes=False), "skimage:astronaut"),
        _cut("shuttle", "space shuttle model", astro, _grabcut(
            astro, [(395, 0), (440, 0), (470, 200), (480, 285), (355, 285), (350, 230), (385, 150)],
            [[(405, 20), (430, 20), (440, 220), (395, 220)]], fill_holes=True), "skimage:astronaut"),
        _cut("helmet", "space helmet", astro, _grabcut(
            astro, [(280, 512), (280, 380), (330, 340), (420, 335), (490, 365), (496, 512)],
            [[(320, 420), (470, 400), (480, 500), (320, 500)]], fill_holes=True), "skimage:astronaut"),
        _cut("coffee_cup", "coffee cup", coffee, _grabcut(
            coffee, [(70, 200), (150, 70), (200, 10), (420, 15), (480, 200), (470, 330), (300, 395), (120, 370)],
            [[(200, 60), (390, 60), (390, 230), (200, 230)], [(120, 270), (420, 280), (300, 360)]],
            fill_holes=False), "skimage:coffee"),
        _cut("rocket", "rocket", rocket, _grabcut(
            rocket, [(303, 125), (342, 125), (347, 396), (300, 396)], [[(315, 160), (330, 160), (333, 385),
                                                                          (312, 385)]],
            fill_holes=True), "skimage:rocket"),
    ]
    horse = ~_sk("horse")
    brown = np.full(horse.shape + (3,), palette.NAMED["brown"], np.uint8)
    out.append(_cut("horse", "horse silhouette", brown, _feather(horse.astype(np.uint8) * 255), "skimage:horse"))
    wheel = _sk("colorwheel")
    out.append(_cut("colour_wheel", "colour wheel", wheel, _disc(*wheel.shape[:2], 185, 185, 182),
                    "skimage:colorwheel"))
    logo = _sk("logo")
    out.append(_cut("logo", "scikit-image logo", logo, _disc(*logo.shape[:2], 250, 250, 244), "skimage:logo"))
    cat = _sk("chelsea")
    out.append(_cut("cat_portrait", "oval cat portrait", cat, _oval(*cat.shape[:2], 230, 150, 175, 140),
                    "skimage:chelsea"))
    return out


def _sticker_cutouts() -> list[Asset]:
    out = []
    for name, rgba in stickers.stickers():
        out.append(_cut(name.replace(" ", "_"), name, rgba[:, :, :3], rgba[:, :, 3], f"sticker:{name}"))
    return out


@functools.cache
def starter_pack() -> AssetPack:
    """The embedded default pack (~30 backgrounds, ~40 cutouts), built once per process.

    Built on OpenCV's baseline kernels (GrabCut's colour models are float maths): the flow
    hashes the pack in the driver and rebuilds it in every worker, on whatever CPU each has.
    """
    with portable_cv():
        return AssetPack(
            label=LABEL,
            backgrounds=tuple(_photo_backgrounds() + _procedural_backgrounds()),
            cutouts=tuple(_photo_cutouts() + _sticker_cutouts()),
        )
