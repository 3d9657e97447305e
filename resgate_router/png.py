"""A lossless PNG writer for the images the router re-encodes, about twice as fast as Pillow's.

Pillow's PNG encoder picks a filter for every row (trying each of PNG's five), which costs more than
the compression itself at zlib level 1. Document pages are mostly flat background, where the plain
filter ``None`` compresses as well, so this writer skips the choice: one zlib stream of the raw rows
(zlib releases the GIL while it compresses). On 512 px renditions of pages it writes in about half
Pillow's time, files within about 10% of Pillow's size either way (benchmarks/RESULTS.md, issue 17).
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

__all__ = ["encode_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {"L": 0, "RGB": 2}  # 8 bits per sample


def encode_png(image: Image.Image, level: int = 1) -> bytes:
    """``image`` as PNG bytes (zlib ``level``): written here for 8-bit RGB and greyscale, by Pillow
    for any other mode."""
    colour = _COLOUR_TYPES.get(image.mode)
    if colour is None:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=level)
        return buffer.getvalue()
    pixels = np.asarray(image).reshape(image.height, -1)
    rows = np.zeros((image.height, pixels.shape[1] + 1), dtype=np.uint8)  # each row: filter byte 0, samples
    rows[:, 1:] = pixels
    header = struct.pack(">IIBBBBB", image.width, image.height, 8, colour, 0, 0, 0)
    return b"".join(
        (_SIGNATURE, _chunk(b"IHDR", header), _chunk(b"IDAT", zlib.compress(rows.data, level)), _chunk(b"IEND", b""))
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))
