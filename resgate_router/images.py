"""Decode and normalise input images: every accepted image leaves here as an 8-bit RGB PIL image.

Handles EXIF orientation, 16-bit and float modes, palette/alpha transparency (composited on white,
the background of a document), CMYK, and refuses empty, corrupt, unsupported or oversized input with
an :class:`~resgate_router.errors.ImageError` instead of a raw PIL exception.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path
from typing import IO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError, ImageTooLargeError

__all__ = ["ImageInput", "DEFAULT_MAX_PIXELS", "load_image", "probe_size", "to_rgb"]

ImageInput = Union[Image.Image, str, os.PathLike[str], bytes, bytearray]

#: Default pixel limit (about 8K x 8K). Larger images are refused before their pixels are decoded.
DEFAULT_MAX_PIXELS = 64_000_000

_ORIENTATION = 0x0112
_TRANSPOSED = {5, 6, 7, 8}  # EXIF orientations that swap width and height
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


def load_image(source: ImageInput, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open ``source`` (PIL image, path or encoded bytes) and return it as upright 8-bit RGB."""
    if isinstance(source, Image.Image):
        _check_size(source.width, source.height, max_pixels)
        return to_rgb(_upright(source))
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageError("image data is empty (0 bytes)")
        return _decode(io.BytesIO(bytes(source)), "image bytes", max_pixels)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"image file not found: {path}")
        if path.stat().st_size == 0:
            raise ImageError(f"image file is empty (0 bytes): {path}")
        with path.open("rb") as handle:
            return _decode(handle, str(path), max_pixels)
    raise ImageError(f"unsupported image input of type {type(source).__name__}")


#: what Pillow raises on corrupt or truncated files (found by fuzzing: not only OSError)
_PILLOW_CORRUPT = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)


def probe_size(source: ImageInput, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """The upright (width, height) ``load_image`` would return, read from the header only (no pixel
    decoding); refuses empty, unrecognised and oversized images the same way."""
    if isinstance(source, Image.Image):
        _check_size(source.width, source.height, max_pixels)
        orientation = source.getexif().get(_ORIENTATION, 1)
        return (source.height, source.width) if orientation in _TRANSPOSED else source.size
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageError("image data is empty (0 bytes)")
        image = _decode(io.BytesIO(bytes(source)), "image bytes", max_pixels, header_only=True)
    else:
        path = Path(source)
        if not path.is_file() or path.stat().st_size == 0:
            return load_image(path, max_pixels=max_pixels).size  # raises the same typed errors
        with path.open("rb") as handle:
            image = _decode(handle, str(path), max_pixels, header_only=True)
    orientation = 1
    if isinstance(image.info.get("exif"), bytes):  # JPEG/WebP headers; PNG eXIf when written before the pixels
        exif = Image.Exif()
        try:
            exif.load(image.info["exif"])
            orientation = exif.get(_ORIENTATION, 1)
        except _PILLOW_CORRUPT:
            pass  # corrupt EXIF: upright, as Pillow's own getexif (so load_image) reads it
    return (image.height, image.width) if orientation in _TRANSPOSED else image.size


def _decode(stream: IO[bytes], what: str, max_pixels: int, *, header_only: bool = False) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(stream)
            _check_size(image.width, image.height, max_pixels)
            if header_only:
                return image
            image.load()
            if getattr(image, "n_frames", 1) > 1:  # counting frames reads the whole file
                image.seek(0)  # animated GIF/WebP/TIFF: the first frame is the document
            return to_rgb(_upright(image))
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"{what}: refused as a possible decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{what}: not a recognised image format") from exc
    except _PILLOW_CORRUPT as exc:
        raise ImageError(f"{what}: corrupt or truncated image ({exc})") from exc


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag, if any (without copying an already upright image)."""
    if image.getexif().get(_ORIENTATION, 1) == 1:
        return image
    return ImageOps.exif_transpose(image)


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageError(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}",
            width=width,
            height=height,
            max_pixels=max_pixels,
        )


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB, scaling 16-bit/float data and flattening alpha on white."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I") or mode == "F":
        return _high_depth_to_rgb(image)
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageError(f"cannot convert image mode {mode!r} to RGB") from exc


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
    """16/32-bit integer and float greyscale to 8-bit, by the range the mode can hold."""
    data = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        peak = float(np.nanmax(data)) if data.size else 0.0
        scale = 255.0 if peak <= 1.0 else 1.0
    else:
        scale = 255.0 / 65535.0 if image.mode.startswith("I;16") or data.max(initial=0) > 255 else 1.0
    grey = np.clip(np.nan_to_num(data * scale), 0, 255).round().astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")
