"""The asset pack: backgrounds and RGBA cutouts, hashed for lineage, pre-scaled per size.

A pack is built once (from a folder, a Lance table or the embedded starter pack) and
shipped to every worker. `prepared(size)` resizes it once per worker and output size so
the hot path only slices and blends.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import cv2
import numpy as np

KINDS = ("background", "cutout")
# Backgrounds are scaled so the short side is this much larger than the canvas: a sample
# takes a random square crop, so one photo gives many different canvases.
BACKGROUND_ZOOM = 1.2
# Cutouts are kept at this fraction of the canvas on their long side; tasks only shrink
# them (or grow them modestly for drag.scale), which keeps resampling sharp and cheap.
CUTOUT_MASTER = 0.75


@dataclass(frozen=True, eq=False)
class Asset:
    asset_id: str  # stable lineage id: "<pack label>:<kind>/<file or item name>"
    kind: str  # "background" | "cutout"
    name: str  # what instructions call it: "red mug", "brick wall"
    pixels: np.ndarray  # background HxWx3, cutout HxWx4 with straight (not premultiplied) alpha
    origin: str = ""  # the photo it was cut from; a cutout is never pasted on its own origin

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"asset {self.asset_id}: kind must be one of {KINDS}, not {self.kind!r}")
        channels = 3 if self.kind == "background" else 4
        p = self.pixels
        if p.dtype != np.uint8 or p.ndim != 3 or p.shape[2] != channels:
            raise ValueError(f"asset {self.asset_id}: want uint8 HxWx{channels}, got {p.dtype} {p.shape}")

    def content_hash(self) -> str:
        h = hashlib.sha256()
        for part in (self.asset_id, self.kind, self.name, str(self.pixels.shape)):
            h.update(part.encode())
            h.update(b"\0")
        h.update(np.ascontiguousarray(self.pixels).tobytes())
        return h.hexdigest()


@dataclass
class PreparedCutout:
    asset_id: str
    name: str
    origin: str
    premul: np.ndarray  # HxWx4 uint8, RGB premultiplied by alpha: resampling never leaves fringes


@dataclass
class PreparedBackground:
    asset_id: str
    name: str
    origin: str
    pixels: np.ndarray  # short side = ceil(size * BACKGROUND_ZOOM)


@dataclass
class PreparedPack:
    size: int
    backgrounds: list[PreparedBackground]
    cutouts: list[PreparedCutout]


@dataclass(frozen=True, eq=False)
class AssetPack:
    label: str
    backgrounds: tuple[Asset, ...]
    cutouts: tuple[Asset, ...]
    # Worker-local caches (prepared sizes, hash); never pickled, never compared.
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ids = [a.asset_id for a in (*self.backgrounds, *self.cutouts)]
        if len(set(ids)) != len(ids):
            raise ValueError(f"pack {self.label}: asset ids are not unique")
        if any(a.kind != "background" for a in self.backgrounds) or any(a.kind != "cutout" for a in self.cutouts):
            raise ValueError(f"pack {self.label}: an asset sits in the wrong list for its kind")

    def __getstate__(self) -> dict:
        return {"label": self.label, "backgrounds": self.backgrounds, "cutouts": self.cutouts}

    def __setstate__(self, state: dict) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "_cache", {})

    def __len__(self) -> int:
        return len(self.backgrounds) + len(self.cutouts)

    def content_hash(self) -> str:
        """sha256 over every asset's id, kind, name and pixels, in pack order."""
        if "hash" not in self._cache:
            h = hashlib.sha256()
            for asset in (*self.backgrounds, *self.cutouts):
                h.update(asset.content_hash().encode())
            self._cache["hash"] = h.hexdigest()
        return self._cache["hash"]

    def sources(self) -> list[tuple[str, str]]:
        """(asset id, content hash) of every asset, for lineage."""
        if "sources" not in self._cache:
            self._cache["sources"] = [(a.asset_id, a.content_hash()) for a in (*self.backgrounds, *self.cutouts)]
        return list(self._cache["sources"])

    def merged(self, backgrounds=(), cutouts=(), label: str | None = None) -> AssetPack:
        """A new pack with more assets (e.g. rembg cutouts added to the starter pack)."""
        return AssetPack(label or self.label, self.backgrounds + tuple(backgrounds), self.cutouts + tuple(cutouts))

    def prepared(self, size: int) -> PreparedPack:
        key = ("prepared", int(size))
        if key not in self._cache:
            self._cache[key] = PreparedPack(
                size=int(size),
                backgrounds=[_prepare_background(a, size) for a in self.backgrounds],
                cutouts=[_prepare_cutout(a, size) for a in self.cutouts],
            )
        return self._cache[key]


def _resize(pixels: np.ndarray, w: int, h: int) -> np.ndarray:
    shrink = w * h < pixels.shape[0] * pixels.shape[1]
    return cv2.resize(pixels, (max(1, w), max(1, h)), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _prepare_background(asset: Asset, size: int) -> PreparedBackground:
    h, w = asset.pixels.shape[:2]
    scale = np.ceil(size * BACKGROUND_ZOOM) / min(h, w)
    pixels = _resize(asset.pixels, int(np.ceil(w * scale)), int(np.ceil(h * scale)))
    return PreparedBackground(asset.asset_id, asset.name, asset.origin, np.ascontiguousarray(pixels))


def premultiply(rgba: np.ndarray) -> np.ndarray:
    a = rgba[:, :, 3:4].astype(np.uint16)
    rgb = (rgba[:, :, :3].astype(np.uint16) * a + 127) // 255
    return np.concatenate([rgb.astype(np.uint8), rgba[:, :, 3:4]], axis=2)


def _prepare_cutout(asset: Asset, size: int) -> PreparedCutout:
    h, w = asset.pixels.shape[:2]
    longest = max(8, int(round(size * CUTOUT_MASTER)))
    scale = longest / max(h, w)
    premul = premultiply(asset.pixels)
    if abs(scale - 1.0) > 1e-6:
        premul = _resize(premul, int(round(w * scale)), int(round(h * scale)))
    return PreparedCutout(asset.asset_id, asset.name, asset.origin, np.ascontiguousarray(premul))
