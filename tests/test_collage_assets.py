"""Asset packs: folder and Lance loading, every bad file a Reject, the embedded starter pack."""

from __future__ import annotations

import io
import json
import pickle
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pytest
import skimage.data
from PIL import Image

from datagen.collage import (
    AssetPack,
    AssetsUnavailable,
    CollageSpec,
    check,
    generate,
    load_assets,
    starter_pack,
)
from datagen.rng import sample_rng
from datagen.schema import Reject, Sample


# --------------------------------------------------------------------------- real files
def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _cat_cutout() -> np.ndarray:
    """A real photo object: the cat's face in an anti-aliased oval."""
    cat = skimage.data.chelsea()
    alpha = np.zeros(cat.shape[:2], np.uint8)
    cv2.ellipse(alpha, (230, 150), (170, 130), 0, 0, 360, 255, -1, lineType=cv2.LINE_AA)
    return np.dstack([cat, alpha])


def _bomb_png(side: int = 30000) -> bytes:
    """A tiny PNG whose header claims side x side pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _write(folder: Path, rel: str, data: bytes) -> None:
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.fixture
def asset_folder(tmp_path: Path) -> Path:
    d = tmp_path / "my_assets"
    coffee, camera, cat = skimage.data.coffee(), skimage.data.camera(), _cat_cutout()
    good_bg = _png(Image.fromarray(coffee))
    _write(d, "backgrounds/coffee_table.png", good_bg)
    _write(d, "backgrounds/cameraman.png", _png(Image.fromarray(camera)))  # greyscale: kept
    cmyk = io.BytesIO()
    Image.fromarray(skimage.data.astronaut()).convert("CMYK").save(cmyk, format="JPEG")
    _write(d, "backgrounds/astronaut_cmyk.jpg", cmyk.getvalue())
    ok, sixteen = cv2.imencode(".png", (skimage.data.rocket()[:, :, ::-1].astype(np.uint16) * 257))
    _write(d, "backgrounds/rocket_16bit.png", sixteen.tobytes())
    _write(d, "backgrounds/chelsea_palette.png", _png(Image.fromarray(skimage.data.chelsea()).convert("P")))
    _write(d, "backgrounds/broken.png", good_bg[: len(good_bg) * 2 // 5])  # truncated
    _write(d, "backgrounds/noise.png", np.random.default_rng(0).integers(0, 256, 500, np.uint8).tobytes())
    _write(d, "backgrounds/tiny.png", _png(Image.fromarray(coffee[:10, :10])))
    _write(d, "backgrounds/bomb.png", _bomb_png())
    _write(d, "backgrounds/readme.txt", b"not an image")

    _write(d, "cutouts/cat_face.png", _png(Image.fromarray(cat, "RGBA")))
    ok, sixteen_rgba = cv2.imencode(".png", cv2.cvtColor(cat, cv2.COLOR_RGBA2BGRA).astype(np.uint16) * 257)
    _write(d, "cutouts/cat_16bit.png", sixteen_rgba.tobytes())
    grey = Image.fromarray(np.dstack([cat[:, :, :3].mean(axis=2).astype(np.uint8), cat[:, :, 3]]), "LA")
    _write(d, "cutouts/grey_cat-02.png", _png(grey))
    pal = Image.fromarray(cat[:, :, :3]).convert("P", palette=Image.Palette.ADAPTIVE, colors=200)
    pal_arr = np.array(pal)
    pal_arr[cat[:, :, 3] < 128] = 250  # index 250 is the transparent one
    pal_img = Image.fromarray(pal_arr, "P")
    pal_img.putpalette((pal.getpalette() + [0] * 768)[:768])
    buf = io.BytesIO()
    pal_img.save(buf, format="PNG", transparency=250)
    _write(d, "cutouts/palette_cat.png", buf.getvalue())
    _write(d, "cutouts/no_alpha.png", _png(Image.fromarray(cat[:, :, :3])))
    empty = cat.copy()
    empty[:, :, 3] = 0
    _write(d, "cutouts/empty.png", _png(Image.fromarray(empty, "RGBA")))
    full = cat.copy()
    full[:, :, 3] = 255
    _write(d, "cutouts/full.png", _png(Image.fromarray(full, "RGBA")))
    speck = np.zeros((64, 64, 4), np.uint8)
    speck[30:35, 30:35] = 255
    _write(d, "cutouts/speck.png", _png(Image.fromarray(speck, "RGBA")))
    (d / "names.json").write_text(json.dumps({"cat_face.png": "tabby cat face", "palette_cat": "poster cat"}))
    return d


def test_folder_rejects_each_bad_file(asset_folder: Path):
    pack, rejects = load_assets(asset_folder)
    by_file = {Path(r.source).name: r for r in rejects}
    assert {k: r.reason for k, r in by_file.items()} == {
        "broken.png": "corrupt_image", "noise.png": "corrupt_image", "readme.txt": "corrupt_image",
        "tiny.png": "too_small", "bomb.png": "decompression_bomb", "no_alpha.png": "no_alpha",
        "empty.png": "empty_alpha", "full.png": "full_alpha", "speck.png": "too_small",
    }
    assert all(r.stage == "assets" and r.detail and str(asset_folder) in r.source for r in rejects)
    # Normalised and kept: CMYK JPEG, greyscale, 16-bit and palette backgrounds; 16-bit, LA, palette cutouts.
    assert sorted(a.name for a in pack.backgrounds) == [
        "astronaut cmyk", "cameraman", "chelsea palette", "coffee table", "rocket 16bit"]
    assert sorted(a.name for a in pack.cutouts) == ["cat 16bit", "grey cat", "poster cat", "tabby cat face"]
    for a in pack.backgrounds:
        assert a.pixels.dtype == np.uint8 and a.pixels.shape[2] == 3
    for a in pack.cutouts:
        alpha = a.pixels[:, :, 3]
        assert a.pixels.shape[2] == 4 and (alpha == 0).any() and (alpha > 200).any()
    assert pack.cutouts[0].asset_id.startswith("my_assets:cutouts/")
    rocket = next(a for a in pack.backgrounds if a.name == "rocket 16bit").pixels
    assert abs(int(rocket.mean()) - int(skimage.data.rocket().mean())) <= 1  # 16-bit scaled back, not black
    # Accounting: every file is kept or rejected.
    files = [p for p in asset_folder.rglob("*") if p.is_file() and p.name != "names.json"]
    assert len(pack) + len(rejects) == len(files)


def test_folder_pack_generates(asset_folder: Path):
    pack, _ = load_assets(str(asset_folder))
    for task in ("edit.replace", "ref.subject", "drag.scale"):
        s = generate(CollageSpec(task=task, size=128, assets=pack), sample_rng(3, 1))
        assert isinstance(s, Sample) and check(s) is None
        assert all(x.startswith("my_assets:") for x in s.source_ids)


def test_empty_or_useless_folder_is_a_clear_error(tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AssetsUnavailable, match=r"empty.*no usable backgrounds or cutouts.*expected backgrounds/"):
        load_assets(empty)
    with pytest.raises(ValueError, match="does not exist"):
        load_assets(tmp_path / "missing")
    bad = tmp_path / "bad"
    _write(bad, "backgrounds/x.png", b"garbage")
    _write(bad, "cutouts/y.png", _png(Image.fromarray(skimage.data.coffee())))
    with pytest.raises(AssetsUnavailable, match=r"x\.png: corrupt_image.*y\.png: no_alpha"):
        load_assets(bad)


def test_lance_asset_table(tmp_path: Path):
    import lance

    cat, coffee = _cat_cutout(), skimage.data.coffee()
    rows = [
        {"asset_id": "bg/coffee", "kind": "background", "name": "coffee table", "image": _png(Image.fromarray(coffee))},
        {"asset_id": "cut/cat", "kind": "cutout", "name": "", "image": _png(Image.fromarray(cat, "RGBA"))},
        {"asset_id": "cut/star", "kind": "cutout", "name": "gold star",
         "image": _png(Image.fromarray(starter_pack().cutouts[12].pixels, "RGBA"))},
        {"asset_id": "cut/bad", "kind": "cutout", "name": "bad", "image": b"\x89PNG broken"},
        {"asset_id": "cut/what", "kind": "sprite", "name": "odd", "image": b"x"},
        {"asset_id": "cut/cat", "kind": "cutout", "name": "again", "image": b"x"},
    ]
    uri = str(tmp_path / "assets.lance")
    schema = pa.schema([("asset_id", pa.string()), ("kind", pa.string()), ("name", pa.string()),
                        ("image", pa.large_binary())])
    lance.write_dataset(pa.Table.from_pylist(rows, schema=schema), uri)
    pack, rejects = load_assets(uri)
    assert [a.name for a in pack.cutouts] == ["cat", "gold star"] and pack.backgrounds[0].name == "coffee table"
    assert {(r.source.split("#")[1], r.reason) for r in rejects} == {
        ("cut/bad", "corrupt_image"), ("cut/what", "unknown_kind"), ("cut/cat", "duplicate_id")}
    assert all(r.source.startswith(uri + "#") for r in rejects)
    s = generate(CollageSpec(task="edit.replace", size=96, assets=pack), sample_rng(0, 2))
    assert isinstance(s, Sample) and check(s) is None
    with pytest.raises(AssetsUnavailable, match="cannot read the asset table"):
        load_assets(str(tmp_path / "nothing.lance"))


def test_starter_pack_contents():
    pack = starter_pack()
    assert len(pack.cutouts) >= 30 and len(pack.backgrounds) >= 20
    names = [c.name for c in pack.cutouts]
    assert len(set(names)) == len(names)  # "the X" is never ambiguous within the pack
    photo_cutouts = [c for c in pack.cutouts if c.origin.startswith("skimage:")]
    assert len(photo_cutouts) >= 8
    for c in pack.cutouts:
        alpha = c.pixels[:, :, 3]
        opaque, clear = (alpha == 255).mean(), (alpha == 0).mean()
        assert opaque > 0.2 and clear > 0.03, (c.name, opaque, clear)  # a real object, not a box
        soft, faint = ((alpha > 0) & (alpha < 255)).sum(), ((alpha > 0) & (alpha < 8)).sum()
        assert soft > 0 and faint < 0.02 * (alpha > 0).sum(), (c.name, soft, faint)  # anti-aliased, no haze


def test_starter_pack_hash_is_stable():
    pack = starter_pack()
    h = pack.content_hash()
    assert len(h) == 64 and pickle.loads(pickle.dumps(pack)).content_hash() == h
    assert starter_pack.__wrapped__().content_hash() == h  # a fresh build is bit-identical
    sources = pack.sources()
    assert len(sources) == len(pack) and len({s for s, _ in sources}) == len(pack)
    other = AssetPack("x", pack.backgrounds[:2], pack.cutouts[:3])
    assert other.content_hash() != h
    assert pack.merged(cutouts=[]).content_hash() == h


def test_prepared_pack_is_not_pickled():
    pack = AssetPack("small", starter_pack().backgrounds[:2], starter_pack().cutouts[:2])
    pack.prepared(96)
    assert len(pickle.dumps(pack)) < len(pickle.dumps(pack.backgrounds)) + len(pickle.dumps(pack.cutouts)) + 4096
    assert isinstance(generate(CollageSpec(task="edit.add", size=96, assets=pickle.loads(pickle.dumps(pack))),
                               sample_rng(1, 1)), (Sample, Reject))
