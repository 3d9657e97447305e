"""The router's own PNG writer: lossless, valid PNG (Pillow verifies every chunk's CRC), any mode."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from resgate_router.messages import decode_data_url, encode_data_url
from resgate_router.png import encode_png


@pytest.mark.parametrize(
    "mode,shape", [("RGB", (37, 53, 3)), ("L", (1, 1)), ("L", (300, 7)), ("RGBA", (5, 9, 4)), ("LA", (4, 4, 2))]
)
def test_encode_png_is_lossless_and_valid(mode, shape):
    pixels = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    image = Image.fromarray(pixels, mode)
    data = encode_png(image)
    Image.open(io.BytesIO(data)).verify()  # signature, chunk order, CRCs
    back = Image.open(io.BytesIO(data))
    assert (back.format, back.mode, back.size) == ("PNG", mode, image.size)
    assert back.tobytes() == image.tobytes()


def test_a_flat_page_compresses():
    page = Image.new("RGB", (512, 384), "white")
    assert len(encode_png(page)) < 10_000  # of 590 KB of samples


def test_re_encoded_images_are_png_unless_they_came_as_jpeg():
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8))
    for mime in (None, "image/png", "image/webp"):
        got, data = decode_data_url(encode_data_url(image, mime))
        assert got == "image/png" and Image.open(io.BytesIO(data)).tobytes() == image.tobytes()
    got, data = decode_data_url(encode_data_url(image, "image/jpeg"))
    assert got == "image/jpeg" and Image.open(io.BytesIO(data)).format == "JPEG"
