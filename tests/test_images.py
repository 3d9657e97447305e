"""Image decoding: every input becomes upright 8-bit RGB or raises a typed ImageError."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from resgate_router import ImageError, ImageTooLargeError, load_image
from resgate_router.testing import make_document_image

from .badimages import corrupt_inputs, encode, exif_rotated, png_with_header_size, unusual_modes


@pytest.mark.parametrize("name,data", list(corrupt_inputs().items()))
def test_corrupt_bytes_raise_image_error(name, data):
    with pytest.raises(ImageError):
        load_image(data)


def test_corrupt_file_error_names_the_file(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(corrupt_inputs()["truncated-png"])
    with pytest.raises(ImageError, match="broken.png"):
        load_image(path)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(tmp_path / "empty.png")
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "missing.png")


def test_decompression_bomb_refused_before_decoding():
    for width, height in [(60000, 60000), (9000, 9000)]:  # over PIL's own limit / over ours only
        data = png_with_header_size(width, height)
        assert len(data) < 100
        with pytest.raises(ImageTooLargeError):
            load_image(data)
    with pytest.raises(ImageTooLargeError) as info:
        load_image(encode(Image.new("L", (200, 200))), max_pixels=10_000)
    assert (info.value.width, info.value.height, info.value.max_pixels) == (200, 200, 10_000)


@pytest.mark.parametrize("mode", list(unusual_modes()))
def test_modes_convert_to_rgb(mode):
    image = unusual_modes()[mode]
    out = load_image(image)
    assert out.mode == "RGB" and out.size == image.size
    grey = np.asarray(out, dtype=np.float64).mean(axis=2)
    assert grey.max() > 200 and grey.min() < 60  # the page stays white with dark text


def test_sixteen_bit_is_scaled_not_clipped():
    ramp = Image.fromarray(np.linspace(0, 65535, 256 * 4, dtype=np.uint16).reshape(4, 256))
    out = np.asarray(load_image(encode(ramp)))[..., 0]
    assert out.min() == 0 and out.max() == 255 and 120 <= out[2, 0] <= 135  # mid-grey stays mid-grey


def test_transparency_is_flattened_on_white():
    clear = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    assert np.asarray(load_image(clear)).min() == 255


def test_exif_orientation_is_applied():
    page = make_document_image(200, 100, lines=2, seed=3)
    upright = load_image(exif_rotated(page, orientation=6))
    assert upright.size == (100, 200)


def test_animated_image_uses_first_frame():
    frames = [Image.new("RGB", (20, 10), c) for c in ("white", "black")]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert np.asarray(load_image(data)).min() > 200


@pytest.mark.parametrize("size", [(1, 1), (20000, 50), (50, 20000)])
def test_extreme_sizes_decode(size):
    assert load_image(encode(Image.new("L", size, 255))).size == size


def test_unsupported_type():
    with pytest.raises(ImageError, match="unsupported"):
        load_image(12345)  # type: ignore[arg-type]
