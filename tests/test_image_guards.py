"""Stored rows are untrusted input too: `datagen.images.decode` refuses decompression bombs
before decoding their pixels, like `load_image` does for files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from datagen import images


def test_decode_refuses_a_bomb_from_its_header():
    buf = io.BytesIO()
    Image.fromarray(np.zeros((5000, 5000), np.uint8)).save(buf, format="PNG", optimize=True)
    assert len(buf.getvalue()) < 100_000  # a tiny file ...
    with pytest.raises(images.ImageRejected, match="decompression_bomb"):
        images.decode(buf.getvalue(), max_pixels=10_000_000)  # ... for a 25-megapixel raster


def test_decode_round_trips_and_names_garbage():
    rgb = np.arange(48 * 32 * 3, dtype=np.uint8).reshape(32, 48, 3)
    assert np.array_equal(images.decode(images.encode_png(rgb)), rgb)
    with pytest.raises(ValueError, match="do not decode"):
        images.decode(b"not an image")


def test_to_rgb_drops_or_composites_alpha_and_names_what_it_refuses():
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[0, 0, 3], rgba[0, 1, 3], rgba[0, 2, 3] = 255, 0, 128
    dropped = images.to_rgb(rgba)
    assert dropped.shape == (2, 3, 3) and dropped.flags.c_contiguous and (dropped == (10, 20, 30)).all()
    white = images.to_rgb(rgba, alpha="white")
    assert white[0, 0].tolist() == [10, 20, 30] and white[0, 1].tolist() == [255, 255, 255]
    assert white[0, 2].tolist() == [132, 137, 142]  # 128/255 of the colour, the rest white, rounded
    grey = np.arange(6, dtype=np.uint8).reshape(2, 3)
    for g in (grey, grey[:, :, None]):
        assert (images.to_rgb(g) == np.repeat(grey[:, :, None], 3, axis=2)).all()
    for bad in (np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 2), np.uint8), [[0]]):
        with pytest.raises(images.ImageRejected) as err:
            images.to_rgb(bad)
        assert err.value.reason == "unsupported_pixels"
    with pytest.raises(ValueError, match="alpha must be one of"):
        images.to_rgb(grey, alpha="black")
