"""Idefics3 family (SmolVLM, SmolVLM2, Idefics3, Granite-Docling).

The processor resizes every image so its longest side equals ``size.longest_edge`` (upscaling small
ones), rounds the sides up to multiples of the tile size, and cuts rows x cols tiles plus one global
view (none when a single tile). Shrinking the image alone therefore saves nothing: the policy sets
``size.longest_edge``. That setting is per request, so all images of a request share the largest
target; each image is also pre-resized to it (saving bandwidth, same pixels as the processor's own
resize). The arithmetic below mirrors transformers' Idefics3 image processor and prompt expansion;
tests check it against the real processor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..ladder import FULL, Rung
from .base import FamilyPolicy, ImagePlan, RequestPlan

__all__ = ["Idefics3Policy", "resized_size", "tile_grid"]

MAX_IMAGE_SIZE = 4096  # transformers' cap on the resized longest side


def resized_size(width: int, height: int, longest_edge: int) -> tuple[int, int]:
    """(width, height) after the processor's resize to ``longest_edge`` (even rounding, 4096 cap)."""
    aspect = width / height
    if width >= height:
        width = longest_edge
        height = int(width / aspect)
        height += height % 2
    else:
        height = longest_edge
        width = int(height * aspect)
        width += width % 2
    height, width = max(height, 1), max(width, 1)
    aspect = width / height
    if width >= height and width > MAX_IMAGE_SIZE:
        width, height = MAX_IMAGE_SIZE, int(MAX_IMAGE_SIZE / aspect)
    elif height > width and height > MAX_IMAGE_SIZE:
        height, width = MAX_IMAGE_SIZE, int(MAX_IMAGE_SIZE * aspect)
    return max(width, 1), max(height, 1)


def tile_grid(width: int, height: int, longest_edge: int, tile: int) -> tuple[int, int]:
    """(rows, cols) of tiles; (0, 0) means one tile and no global view."""
    width, height = resized_size(width, height, longest_edge)
    aspect = width / height
    if width >= height:
        width = math.ceil(width / tile) * tile
        height = math.ceil(int(width / aspect) / tile) * tile
    else:
        height = math.ceil(height / tile) * tile
        width = math.ceil(int(height * aspect) / tile) * tile
    if height > tile or width > tile:
        return (height - tile) // tile + 1, (width - tile) // tile + 1
    return 0, 0


class Idefics3Policy(FamilyPolicy):
    name = "idefics3"

    def __init__(
        self,
        *,
        longest_edge: int = 2048,
        tile_size: int = 512,
        image_seq_len: int = 64,
        split_newline_extra: int = 0,
        do_image_splitting: bool = True,
        pre_resize: bool = True,
    ) -> None:
        """Defaults are SmolVLM-256M/500M-Instruct's. ``split_newline_extra`` is 1 for tokenizers
        that do not merge "\\n\\n" into one token (SmolVLM's does). ``pre_resize=False`` sends images
        as they came (the processor setting alone sets the compute; the router then never needs to
        decode pixels for a forced class), trading upload bandwidth for proxy CPU."""
        self.longest_edge, self.tile_size, self.image_seq_len = longest_edge, tile_size, image_seq_len
        self.split_newline_extra, self.do_image_splitting = split_newline_extra, do_image_splitting
        self.granularity = tile_size
        self.pre_resize = pre_resize

    def tokens_at(self, width: int, height: int, longest_edge: int) -> int:
        rows, cols = tile_grid(width, height, longest_edge, self.tile_size) if self.do_image_splitting else (0, 0)
        single = self.image_seq_len + 3  # <fake><global-img><image>*n<fake>
        if rows == 0:
            return single
        return single + self.split_newline_extra + rows * (cols * (self.image_seq_len + 2) + 1)

    def plan(self, natives: list[tuple[int, int]], rungs: Sequence[Rung]) -> RequestPlan:
        targets = [self.longest_edge if r == FULL else min(int(r), max(size)) for size, r in zip(natives, rungs)]
        edge = max(targets, default=self.longest_edge)
        kwargs = {} if edge == self.longest_edge else {"size": {"longest_edge": edge}}
        images = []
        for (width, height), rung in zip(natives, rungs):
            # pre-resize only when routed below the default (the baseline request is left as it was)
            shrink = self.pre_resize and edge < self.longest_edge and edge < max(width, height)
            send = resized_size(width, height, edge) if shrink else (width, height)
            rows, cols = tile_grid(width, height, edge, self.tile_size) if self.do_image_splitting else (0, 0)
            tiles = rows * cols + 1 if rows else 1
            images.append(ImagePlan((width, height), rung, send, self.tokens_at(width, height, edge), tiles=tiles))
        return RequestPlan(tuple(images), kwargs)

    def describe(self) -> dict[str, Any]:
        return {
            "family": self.name,
            "longest_edge": self.longest_edge,
            "tile_size": self.tile_size,
            "image_seq_len": self.image_seq_len,
        }

    @classmethod
    def from_processor_config(
        cls, config: dict[str, Any], model_config: dict[str, Any] | None = None, **options: Any
    ) -> Idefics3Policy:
        """From a processor/preprocessor config dict (``processor_config.json`` or the older split files)."""
        image = config.get("image_processor", config)
        seq = config.get("image_seq_len")
        if seq is None and model_config:
            vision = model_config.get("vision_config", {})
            seq = int(
                (vision.get("image_size", 512) // vision.get("patch_size", 16)) ** 2
                / model_config.get("scale_factor", 4) ** 2
            )
        return cls(
            longest_edge=int(image.get("size", {}).get("longest_edge", 2048)),
            tile_size=int(image.get("max_image_size", {}).get("longest_edge", 512)),
            image_seq_len=int(seq or 64),
            do_image_splitting=bool(image.get("do_image_splitting", True)),
            **options,
        )
