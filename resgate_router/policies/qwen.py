"""Qwen2-VL / Qwen2.5-VL (``qwen2_vl``) and Qwen3-VL (``qwen3_vl``).

The processor's ``smart_resize`` rounds each side to a multiple of patch x merge (28 px; 32 for
Qwen3-VL) and scales the area into [min_pixels, max_pixels]; each merged patch is one token. The
pixel count decides, so pre-resizing the image saves compute; the processor pixel budget is set to the planned
area as well (``size.longest_edge``, the pixel budget), so a processor that also applies it
lands on the same grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..errors import ImageError
from ..ladder import FULL, Rung
from .base import FamilyPolicy, ImagePlan, RequestPlan, scaled_size

__all__ = ["QwenVLPolicy", "smart_resize"]

MAX_ASPECT = 200  # the processor refuses more elongated images


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """transformers' Qwen2-VL ``smart_resize``: (height, width) multiples of ``factor``."""
    if max(height, width) / min(height, width) > MAX_ASPECT:
        raise ImageError(
            f"aspect ratio {max(height, width) / min(height, width):.0f} is over {MAX_ASPECT}, "
            "which Qwen-VL processors reject"
        )
    h_bar, w_bar = round(height / factor) * factor, round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar, w_bar = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


class QwenVLPolicy(FamilyPolicy):
    def __init__(
        self,
        name: str = "qwen2_vl",
        *,
        patch_size: int | None = None,
        merge_size: int = 2,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
    ) -> None:
        """Defaults: Qwen2/2.5-VL patch 14, pixels in [56*56, 28*28*1280]; Qwen3-VL patch 16,
        pixels in [32*32*... as its image processor's defaults]."""
        qwen3 = name == "qwen3_vl"
        self.name = name
        self.patch_size = patch_size or (16 if qwen3 else 14)
        self.merge_size = merge_size
        self.factor = self.patch_size * merge_size
        self.min_pixels = min_pixels if min_pixels is not None else (65536 if qwen3 else 56 * 56)
        self.max_pixels = max_pixels if max_pixels is not None else (16777216 if qwen3 else 28 * 28 * 1280)
        self.granularity = self.factor

    def grid(self, width: int, height: int) -> tuple[int, int]:
        h, w = smart_resize(height, width, self.factor, self.min_pixels, self.max_pixels)
        return h // self.factor, w // self.factor

    def plan(self, natives: list[tuple[int, int]], rungs: Sequence[Rung]) -> RequestPlan:
        images, budget = [], 0
        for (width, height), rung in zip(natives, rungs):
            send = (width, height) if rung == FULL else scaled_size(width, height, int(rung))
            rows, cols = self.grid(*send)
            # the budget that leaves this image's grid unchanged: its area after rounding, before the cap
            rounded = round(send[1] / self.factor) * round(send[0] / self.factor) * self.factor**2
            budget = max(budget, min(rounded, self.max_pixels))
            images.append(ImagePlan((width, height), rung, send, rows * cols))
        routed = any(r != FULL for r in rungs)
        kwargs = (
            {"size": {"shortest_edge": self.min_pixels, "longest_edge": max(budget, self.min_pixels)}} if routed else {}
        )
        return RequestPlan(tuple(images), kwargs)

    def describe(self) -> dict[str, Any]:
        return {
            "family": self.name,
            "patch_size": self.patch_size,
            "merge_size": self.merge_size,
            "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels,
        }

    @classmethod
    def from_processor_config(cls, name: str, config: dict[str, Any]) -> QwenVLPolicy:
        image = config.get("image_processor", config)
        size = image.get("size") or {}
        return cls(
            name,
            patch_size=image.get("patch_size"),
            merge_size=int(image.get("merge_size", 2)),
            min_pixels=image.get("min_pixels", size.get("shortest_edge")),
            max_pixels=image.get("max_pixels", size.get("longest_edge")),
        )
