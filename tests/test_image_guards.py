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
