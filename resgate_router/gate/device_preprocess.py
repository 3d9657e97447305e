"""The Idefics3 preprocessing of :mod:`.preprocess` on a torch device (CUDA), bit for bit.

From the decoded uint8 pixels (one host-to-device copy per batch), every resize is Pillow's LANCZOS
as matrix products: each pass multiplies by the matrix of Pillow's fixed-point weights
(:func:`.resample.coefficients`) in float64, where every product and every partial sum is an integer
below 2**53 and so exact in any summation order, then rounds and clips as Pillow does. The matrices
are applied in blocks of output rows, each over the input span its weights touch. Tiles are views;
rescale + normalize is the host path's lookup table, indexed on the device. The tests run this code on
CPU tensors against the real processor.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from PIL import Image

from ..policies.idefics3 import resized_size, tile_grid
from .preprocess import Idefics3Preprocessor
from .profiles import CARES_MID_SIZE, cares_mid_size
from .resample import PRECISION_BITS, coefficients, horizontal_first

__all__ = ["DevicePreprocessor", "DeviceResampler"]

_BLOCK = 128  # output rows per block of a pass's matrix product
_CACHED_AXES = 64  # weight matrices kept per device (the fixed cares sizes plus recent page sizes)

Blocks = list[tuple[slice, int, int, torch.Tensor]]  # (output rows, input start, input stop, weights)


class DeviceResampler:
    """Pillow's LANCZOS resize of float64 (batch, height, width, channels) pixels on ``device``."""

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self._weights: OrderedDict[tuple[int, int], Blocks] = OrderedDict()

    def _blocks(self, size_in: int, size_out: int) -> Blocks:
        key = (size_in, size_out)
        if key in self._weights:
            self._weights.move_to_end(key)
            return self._weights[key]
        matrix, blocks = coefficients(size_in, size_out), []
        for start in range(0, size_out, _BLOCK):
            rows = slice(start, min(start + _BLOCK, size_out))
            used = np.flatnonzero(matrix[rows].any(axis=0))
            low, high = (int(used[0]), int(used[-1]) + 1) if used.size else (0, 1)
            weights = torch.from_numpy(np.ascontiguousarray(matrix[rows, low:high])).to(self.device)
            blocks.append((rows, low, high, weights))
        self._weights[key] = blocks
        if len(self._weights) > _CACHED_AXES:
            self._weights.popitem(last=False)
        return blocks

    def _pass(self, pixels: torch.Tensor, size_out: int, horizontal: bool) -> torch.Tensor:
        """One Pillow pass over (batch, height, width, channels) float64 pixels (integer values)."""
        batch, height, width, channels = pixels.shape
        if horizontal:
            source = pixels.permute(0, 1, 3, 2)  # (b, h, c, w): the products run along w
            out = pixels.new_empty((batch, height, channels, size_out))
            for rows, low, high, weights in self._blocks(width, size_out):
                out[..., rows] = source[..., low:high] @ weights.T
            out = out.permute(0, 1, 3, 2)
        else:
            source = pixels.reshape(batch, height, width * channels)
            out = pixels.new_empty((batch, size_out, width * channels))
            for rows, low, high, weights in self._blocks(height, size_out):
                out[:, rows] = weights @ source[:, low:high]
            out = out.reshape(batch, size_out, width, channels)
        half, unit = float(1 << (PRECISION_BITS - 1)), 1.0 / (1 << PRECISION_BITS)
        return torch.floor((out + half) * unit).clamp_(0, 255)  # clip8(ss >> PRECISION_BITS)

    def resize(self, pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Pillow's ``resize(size, LANCZOS)`` of (batch, height, width, channels) float64 pixels."""
        height, width = pixels.shape[1:3]
        passes = [(True, size[0])] * (size[0] != width) + [(False, size[1])] * (size[1] != height)
        if not horizontal_first((width, height), size):
            passes.reverse()
        for horizontal, out in passes:
            pixels = self._pass(pixels, out, horizontal)
        return pixels


class DevicePreprocessor:
    """``batch`` as :meth:`Idefics3Preprocessor.batch`, with the pixel work on ``device``."""

    def __init__(self, host: Idefics3Preprocessor, device: torch.device | str) -> None:
        self.host, self.device = host, torch.device(device)
        self.lut = torch.from_numpy(host.lut).to(self.device)
        self.resize = DeviceResampler(self.device).resize

    def _cares_canvas(self, pixels: torch.Tensor) -> torch.Tensor:
        """profiles.cares_canvas: the mid rendition, pasted centred on the black tile-sized canvas."""
        height, width = pixels.shape[1:3]
        width, height = cares_mid_size(width, height)
        pixels = self.resize(pixels, (width, height))  # no pass when it is small enough already
        tile = self.host.tile
        canvas = pixels.new_zeros((1, tile, tile, pixels.shape[3]))
        left = (CARES_MID_SIZE - width) // 2 + (tile - CARES_MID_SIZE) // 2  # both pastes' offsets
        top = (CARES_MID_SIZE - height) // 2 + (tile - CARES_MID_SIZE) // 2
        x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + width, tile), min(top + height, tile)
        canvas[:, y0:y1, x0:x1] = pixels[:, y0 - top : y1 - top, x0 - left : x1 - left]
        return canvas

    def render(self, pixels: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """One image's (height, width, 3) uint8 pixels on the device -> its (n, tile, tile, 3) float64
        tiles (the global view last) and grid, as :meth:`Idefics3Preprocessor.render`."""
        t, host = self.host.tile, self.host
        image = pixels.unsqueeze(0).to(torch.float64)
        if host.profile == "cares":
            image = self._cares_canvas(image)
        else:
            height, width = image.shape[1:3]
            image = self.resize(image, resized_size(width, height, t))
        height, width = image.shape[1:3]
        rows, cols = tile_grid(width, height, host.longest_edge, t)
        size = resized_size(width, height, host.longest_edge)
        image = self.resize(self.resize(image, size), (max(cols, 1) * t, max(rows, 1) * t))
        if rows == 0:
            return image, 0, 0
        tiles = image[0].unfold(0, t, t).unfold(1, t, t)  # (rows, cols, 3, t, t)
        tiles = tiles.permute(0, 1, 3, 4, 2).reshape(rows * cols, t, t, 3)
        return torch.cat([tiles, self.resize(image, (t, t))]), rows, cols

    def normalize(self, tiles: torch.Tensor) -> torch.Tensor:
        """(n, t, t, 3) float64 pixels -> (n, 3, t, t) float32, by the host path's table."""
        index = tiles.to(torch.long)
        return torch.stack([self.lut[c][index[..., c]] for c in range(3)], dim=1)

    # ------------------------------------------------------------------ batch
    def upload(self, images: list[Image.Image]) -> list[torch.Tensor]:
        """The images' uint8 pixels on the device, in one host-to-device copy."""
        arrays = [np.asarray(image.convert("RGB") if image.mode != "RGB" else image) for image in images]
        flat = torch.from_numpy(np.concatenate([a.reshape(-1) for a in arrays])).to(self.device)
        pieces = flat.split([a.size for a in arrays])  # type: ignore[no-untyped-call]  # torch leaves it unannotated
        return [piece.view(a.shape) for piece, a in zip(pieces, arrays)]

    def batch(self, images: list[Image.Image], questions: list[object]) -> dict[str, torch.Tensor]:
        """``input_ids``, ``attention_mask`` (int64) and ``pixel_values`` (float32), on the device."""
        host = self.host
        rendered = [self.render(pixels) for pixels in self.upload(images)]
        ids, mask = host.encode([host.token_ids(q, rows, cols) for q, (_, rows, cols) in zip(questions, rendered)])
        most = max(len(tiles) for tiles, _, _ in rendered)
        pixel_values = torch.zeros((len(rendered), most, 3, host.tile, host.tile), device=self.device)
        for row, (tiles, _, _) in enumerate(rendered):
            pixel_values[row, : len(tiles)] = self.normalize(tiles)
        ids_t, mask_t = (torch.from_numpy(array).to(self.device) for array in (ids, mask))
        return {"input_ids": ids_t, "attention_mask": mask_t, "pixel_values": pixel_values}
