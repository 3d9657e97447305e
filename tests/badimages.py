"""Generators of bad and unusual image inputs (made at test time; no binaries are committed)."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

from resgate_router.testing import make_document_image


def encode(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def png_with_header_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression bomb's signature)."""
    data = bytearray(encode(Image.new("L", (1, 1))))
    ihdr = 8 + 8  # signature, then length + "IHDR"
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12 : ihdr + 13])) & 0xFFFFFFFF
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def exif_rotated(image: Image.Image, orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", exif=exif.tobytes(), quality=95)


def corrupt_inputs() -> dict[str, bytes]:
    page = make_document_image(300, 400, lines=5, seed=1)
    png, jpeg = encode(page), encode(page, "JPEG")
    return {
        "empty": b"",
        "truncated-png": png[: len(png) // 2],
        "truncated-jpeg": jpeg[: len(jpeg) // 3],
        "wrong-magic": b"\x00\x01\x02\x03" + png[4:],
        "text": b"this is not an image at all",
        "svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>',
        "pdf": b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF",
    }


def unusual_modes() -> dict[str, Image.Image]:
    page = make_document_image(300, 400, lines=5, seed=2)
    rgba = page.convert("RGBA")  # opaque text on a transparent background
    rgba.putalpha(page.convert("L").point(lambda v: 255 - v))
    palette = page.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0
    import numpy as np

    sixteen = Image.fromarray((np.asarray(page.convert("L"), dtype=np.uint16) * 257))
    return {
        "L": page.convert("L"),
        "1": page.convert("1"),
        "P": page.convert("P"),
        "P-transparent": palette,
        "RGBA": rgba,
        "LA": page.convert("LA"),
        "CMYK": page.convert("CMYK"),
        "I;16": sixteen,
        "I": page.convert("I"),
        "F": page.convert("F"),
        "YCbCr": page.convert("YCbCr"),
    }
