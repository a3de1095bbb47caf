"""Load an asset pack from a folder or a Lance table; every bad file becomes a Reject.

Folder layout: DIR/backgrounds/* (any image) and DIR/cutouts/* (RGBA; the alpha is the
object), with names from file stems ("red_mug.png" -> "red mug") or DIR/names.json.
Lance table: columns asset_id, kind ("background" | "cutout"), name, image (encoded bytes).
Every file goes through `datagen.images.load_image` (bomb guard, mode normalisation). A
folder is listed by `datagen.folder_listing`: a file that links outside DIR is a Reject
(`outside_folder`), never read; a names.json that does is refused outright.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np

from datagen.collage.pack import Asset, AssetPack
from datagen.folder_listing import list_folder, outside
from datagen.images import ImageRejected, load_image
from datagen.schema import Reject

MIN_BACKGROUND_SIDE = 64
MIN_CUTOUT_SIDE = 16  # of the object's own box, after cropping to its alpha
# Cap stored resolution: prepared() never needs more than ~1.2x the canvas, and a pack is
# shipped to every worker.
MAX_SIDE = 1024
# Alpha at or below this is "no object"; a cutout needs some pixels above it and some below.
ALPHA_EMPTY = 8
LANCE_COLUMNS = ("asset_id", "kind", "name", "image")
MAX_NAMES_BYTES = 16 << 20  # names.json: a name per file, read whole


class AssetsUnavailable(ValueError):
    """The asset source holds nothing a collage can be made from (raised before any work)."""


def _reject(reason: str, detail: str, source: str) -> Reject:
    return Reject(reason=reason, detail=detail, source=source, stage="assets")


def name_from_stem(stem: str) -> str:
    """'red_mug' -> 'red mug'; 'Star-02' -> 'star' (trailing numbers only tell copies apart)."""
    words = [w for w in re.split(r"[\s_\-.]+", stem.lower()) if w]
    while len(words) > 1 and words[-1].isdigit():
        words.pop()
    return " ".join(words) or "object"


def _limit(pixels: np.ndarray) -> np.ndarray:
    h, w = pixels.shape[:2]
    if max(h, w) <= MAX_SIDE:
        return pixels
    s = MAX_SIDE / max(h, w)
    return cv2.resize(pixels, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def make_asset(raw: bytes | Path, kind: str, asset_id: str, name: str, source: str) -> Asset | Reject:
    """Decode and check one asset file; a Reject names why it cannot be used."""
    try:
        img = load_image(raw, keep_alpha=kind == "cutout",
                         min_side=MIN_BACKGROUND_SIDE if kind == "background" else MIN_CUTOUT_SIDE)
    except ImageRejected as exc:
        return _reject(exc.reason, exc.detail, source)
    if kind == "background":
        rgb = img.pixels[:, :, :3] if img.has_alpha else img.pixels
        return Asset(asset_id, kind, name, np.ascontiguousarray(_limit(rgb)), origin=asset_id)
    if not img.has_alpha:
        return _reject("no_alpha", f"{img.source_mode} {img.format} has no alpha channel to cut the object", source)
    alpha = img.pixels[:, :, 3]
    solid = alpha > ALPHA_EMPTY
    if not solid.any():
        return _reject("empty_alpha", "alpha is transparent everywhere", source)
    if solid.all():
        return _reject("full_alpha", "alpha is opaque everywhere: a rectangle, not a cutout", source)
    ys, xs = np.nonzero(solid)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    if min(x1 - x0, y1 - y0) < MIN_CUTOUT_SIDE:
        return _reject("too_small", f"object is {x1 - x0}x{y1 - y0}px, below {MIN_CUTOUT_SIDE}px", source)
    rgba = np.ascontiguousarray(img.pixels[y0:y1, x0:x1])
    return Asset(asset_id, kind, name, _limit(rgba), origin=asset_id)


def read_names(folder: Path) -> dict[str, str]:
    """folder/names.json ({"file name": "name"}), or {} without one; AssetsUnavailable when unusable."""
    path = folder / "names.json"
    if not path.is_file() and not path.is_symlink():
        return {}
    why = outside(path, folder)
    if why is not None:
        raise AssetsUnavailable(f"{path}: {why.detail}")
    if path.stat().st_size > MAX_NAMES_BYTES:
        raise AssetsUnavailable(f"{path} is larger than {MAX_NAMES_BYTES:,} bytes: not a list of names")
    try:
        names = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AssetsUnavailable(f"{path} is not valid JSON ({exc}); expected {{\"file name\": \"name\"}}") from exc
    if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
        raise AssetsUnavailable(f"{path} must map file names to names, e.g. {{\"red_mug.png\": \"red mug\"}}")
    return {str(k): v.strip() for k, v in names.items()}


def load_folder(folder: str | Path) -> tuple[AssetPack, list[Reject]]:
    folder = Path(folder)
    if not folder.is_dir():
        raise AssetsUnavailable(f"asset folder {folder} does not exist; expected backgrounds/ and cutouts/ in it")
    names = read_names(folder)
    label = folder.resolve().name or "assets"
    found: dict[str, list[Asset]] = {"background": [], "cutout": []}
    rejects: list[Reject] = []
    for kind, sub in (("background", "backgrounds"), ("cutout", "cutouts")):
        root = folder / sub
        listing = list_folder(root, skip_hidden=True, within=folder) if root.is_dir() else None
        rejects += [r.reject(stage="assets") for r in (listing.refused if listing else [])]
        for path in listing.paths() if listing else []:
            rel = path.relative_to(folder).as_posix()
            name = names.get(rel) or names.get(path.name) or names.get(path.stem) or name_from_stem(path.stem)
            got = make_asset(path, kind, f"{label}:{rel}", name, str(path))
            (rejects if isinstance(got, Reject) else found[kind]).append(got)
    _require(found, rejects, f"asset folder {folder}",
             "backgrounds/ with images and cutouts/ with RGBA PNG/WebP files whose alpha marks the object")
    return AssetPack(label, tuple(found["background"]), tuple(found["cutout"])), rejects


def load_lance(uri: str) -> tuple[AssetPack, list[Reject]]:
    import lance  # only needed for this source

    try:
        table = lance.dataset(uri).to_table(columns=list(LANCE_COLUMNS))
    except Exception as exc:  # lance raises OSError/ValueError/its own types for a missing table or column
        raise AssetsUnavailable(f"cannot read the asset table {uri}: {exc}; expected columns {LANCE_COLUMNS}") from exc
    label = Path(uri.rstrip("/")).name.removesuffix(".lance") or "assets"
    found: dict[str, list[Asset]] = {"background": [], "cutout": []}
    rejects: list[Reject] = []
    seen: set[str] = set()
    for row in table.to_pylist():
        asset_id, kind = str(row["asset_id"]), row["kind"]
        source = f"{uri}#{asset_id}"
        if kind not in found:
            rejects.append(_reject("unknown_kind", f"kind {kind!r} is not background|cutout", source))
        elif asset_id in seen:
            rejects.append(_reject("duplicate_id", f"asset id {asset_id!r} appears more than once", source))
        elif not row["image"]:
            rejects.append(_reject("empty_file", "image is null or zero bytes", source))
        else:
            seen.add(asset_id)
            name = (row["name"] or "").strip() or name_from_stem(Path(asset_id).stem)
            got = make_asset(bytes(row["image"]), kind, f"{label}:{asset_id}", name, source)
            (rejects if isinstance(got, Reject) else found[kind]).append(got)
    _require(found, rejects, f"asset table {uri}",
             "rows of kind 'background' and rows of kind 'cutout' (RGBA images whose alpha marks the object)")
    return AssetPack(label, tuple(found["background"]), tuple(found["cutout"])), rejects


def _require(found: dict[str, list[Asset]], rejects: list[Reject], where: str, expected: str) -> None:
    missing = [k + "s" for k in ("background", "cutout") if not found[k]]
    if missing:
        why = "; ".join(f"{r.source}: {r.reason}" for r in rejects[:5])
        more = f" ({len(rejects)} file(s) rejected: {why}{' ...' if len(rejects) > 5 else ''})" if rejects else ""
        raise AssetsUnavailable(f"{where} has no usable {' or '.join(missing)}{more}; expected {expected}")


def _is_lance(source: str) -> bool:
    return "://" in source or source.rstrip("/").endswith(".lance") or (Path(source) / "_versions").is_dir()


def load_assets(source: str | Path) -> tuple[AssetPack, list[Reject]]:
    """A pack from a folder or a Lance table URI, plus one Reject per unusable file.

    Raises AssetsUnavailable (a ValueError) naming the source when nothing usable is left.
    """
    text = str(source)
    return load_lance(text) if _is_lance(text) else load_folder(source)
