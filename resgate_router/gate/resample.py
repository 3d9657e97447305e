"""Pillow's resize, bit for bit, faster: on threads on the host (:func:`resize`).

Pillow resizes in two separable passes, each rounded to uint8: horizontal (every output row from one
input row), then vertical (every output column from one input column). So the horizontal pass can run
on bands of rows and the vertical pass on bands of columns, each band an ordinary Pillow resize that
needs only that one pass, with the same filter coefficients as the whole image's: the result is the
whole resize's, for any scale. Pillow releases the GIL while it resamples, so the bands run in
parallel (unless the resize is one item of a batch already running side by side: ``gate.pool``).

Images the router decoded itself can share their renditions (:func:`share_renditions`): the gate's
shrink of a page and the router's pre-resize of it are often the very same resize.
"""

from __future__ import annotations

import functools
import weakref

import numpy as np
from PIL import Image

from .pool import WORKERS, parallel_map, splits

__all__ = ["horizontal_first", "resize", "resize_image", "share_renditions"]

_MIN_PIXELS = 256 * 256  # below this a pass is cheaper than handing it to threads
_RENDITIONS: dict[int, dict[tuple[tuple[int, int], int], Image.Image]] = {}  # by id(source), while it lives


def share_renditions(image: Image.Image) -> Image.Image:
    """From now on, each resize of ``image`` to one size with one filter is computed once and the
    result shared (so no caller may change it or them: for images nobody else holds, such as the
    router's own decodes). The shared results go when ``image`` does."""
    if id(image) not in _RENDITIONS:
        _RENDITIONS[id(image)] = {}
        weakref.finalize(image, _RENDITIONS.pop, id(image), None)
    return image


def _bands(length: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, length, WORKERS + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _pass(image: Image.Image, out: int, resample: int, horizontal: bool) -> Image.Image:
    """One of Pillow's two passes alone, on bands of rows (horizontal: every row keeps its height) or
    of columns (vertical), pasted back together."""
    width, height = image.size

    def band(edges: tuple[int, int]) -> Image.Image:
        a, b = edges
        if horizontal:
            return image.crop((0, a, width, b)).resize((out, b - a), resample)
        return image.crop((a, 0, b, height)).resize((b - a, out), resample)

    edges = _bands(height if horizontal else width)
    result = Image.new(image.mode, (out, height) if horizontal else (width, out))
    for (a, _), piece in zip(edges, parallel_map(band, edges)):
        result.paste(piece, (0, a) if horizontal else (a, 0))
    return result


@functools.cache
def _pillow_may_go_vertical_first() -> bool:
    """Whether this Pillow runs the vertical pass first when that is cheaper (newer releases) or
    always the horizontal one first (older): asked of Pillow itself, on a 16 x 64 probe."""
    probe = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 16, 3), dtype=np.uint8))
    lanczos_ = Image.Resampling.LANCZOS
    vertical_first = probe.resize((16, 8), lanczos_).resize((12, 8), lanczos_)
    return probe.resize((12, 8), lanczos_).tobytes() == vertical_first.tobytes()


def horizontal_first(size: tuple[int, int], out: tuple[int, int]) -> bool:
    """Pillow's order of the passes: vertical first when the height shrinks by more than twice what the
    width does (``ImagingResampleInner`` in recent releases), else (and always, in older ones) horizontal."""
    (width, height), (out_w, out_h) = size, out
    vertical = height - out_h > 0 and height - out_h > (width - out_w) * 2
    return not (vertical and _pillow_may_go_vertical_first())


def resize(image: Image.Image, size: tuple[int, int], resample: int) -> np.ndarray:
    """``np.asarray(image.resize(size, resample))``, bit for bit (see :func:`resize_image`)."""
    return np.asarray(image if size == image.size else resize_image(image, size, resample))


def resize_image(image: Image.Image, size: tuple[int, int], resample: int) -> Image.Image:
    """``image.resize(size, resample)`` (an RGB or L image), bit for bit, each pass in bands on
    threads when the image is large enough for that to pay; shared when ``image`` shares renditions."""
    shared = _RENDITIONS.get(id(image))
    key = ((int(size[0]), int(size[1])), int(resample))
    if shared is not None and key in shared:
        return shared[key]
    result = _resize(image, key[0], resample)
    if shared is not None:
        shared[key] = result
    return result


def _resize(image: Image.Image, size: tuple[int, int], resample: int) -> Image.Image:
    (width, height), (out_w, out_h) = image.size, size
    if not splits() or max(width, out_w) * max(height, out_h) < _MIN_PIXELS:
        return image.resize(size, resample)
    passes = [(True, out_w)] * (out_w != width) + [(False, out_h)] * (out_h != height)
    if not horizontal_first(image.size, size):
        passes.reverse()
    for horizontal, out in passes:
        image = _pass(image, out, resample, horizontal)
    return image


#: Pillow's fixed-point precision for 8-bit resampling (``PRECISION_BITS`` in Resample.c)
PRECISION_BITS = 22


def lanczos(x: np.ndarray) -> np.ndarray:
    """Pillow's ``lanczos_filter``: sinc(x) * sinc(x / 3) on [-3, 3), in the same float64 steps."""

    def sinc(v: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            scaled = v * np.pi
            return np.where(v == 0.0, 1.0, np.sin(scaled) / scaled)

    return np.where((x >= -3.0) & (x < 3.0), sinc(x) * sinc(x / 3), 0.0)


def coefficients(in_size: int, out_size: int) -> np.ndarray:
    """The (out_size, in_size) matrix of Pillow's fixed-point LANCZOS weights for resizing one axis
    from ``in_size`` to ``out_size`` (the whole axis, no box): ``precompute_coeffs`` then
    ``normalize_coeffs_8bpc``, step by step in the same float64 arithmetic. The integers are held as
    float64, exactly; a pass is ``floor((weights @ pixels + 2**21) / 2**22)`` clipped to 0..255."""
    scale = float(np.float32(in_size)) / out_size  # (double)(in1 - in0) / outSize, box in float32
    filterscale = max(scale, 1.0)
    support = 3.0 * filterscale
    ksize = int(np.ceil(support)) * 2 + 1
    centers = (np.arange(out_size) + 0.5) * scale  # in0 + (xx + 0.5) * scale, in0 = 0
    xmin = np.maximum((centers - support + 0.5).astype(np.int64), 0)  # C casts truncate toward zero
    xmax = np.minimum((centers + support + 0.5).astype(np.int64), in_size) - xmin
    taps = np.arange(ksize)
    valid = taps[None, :] < xmax[:, None]
    position = (taps[None, :] + xmin[:, None]).astype(np.float64)
    weights = np.where(valid, lanczos(((position - centers[:, None]) + 0.5) * (1.0 / filterscale)), 0.0)
    total = np.cumsum(weights, axis=1)[:, -1:]  # ww += w, in order (zeros past xmax add nothing)
    weights = np.where(total != 0.0, weights / np.where(total != 0.0, total, 1.0), weights)
    fixed = weights * float(1 << PRECISION_BITS)
    fixed = np.trunc(np.where(fixed < 0, fixed - 0.5, fixed + 0.5))  # (int)(+-0.5 + k * 2**22)
    matrix = np.zeros((out_size, in_size), dtype=np.float64)
    rows = np.repeat(np.arange(out_size), ksize)
    columns = (xmin[:, None] + taps[None, :]).ravel()
    keep = valid.ravel()
    matrix[rows[keep], columns[keep]] = fixed.ravel()[keep]
    return matrix
