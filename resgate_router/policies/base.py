"""What a family policy is: how a rung becomes a concrete request, and what an image costs.

A *resolution* here is a numeric rung in px (the image is sent with longest side
``min(resolution, native)``, never upscaled) or ``None`` for the downstream's default processing
(the ``full`` rung, i.e. the baseline without the router).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ImagePlan", "RequestPlan", "FamilyPolicy", "scaled_size"]


@dataclass(frozen=True)
class ImagePlan:
    """One image of a request: its native size, the size it is sent at and the tokens it costs."""

    native: tuple[int, int]
    resolution: int | None
    send_size: tuple[int, int]
    tokens: int
    detail: str | None = None  # OpenAI-style APIs only
    tiles: int = 0  # vision-encoder tiles, for tiled families (0: not counted)

    @property
    def resized(self) -> bool:
        return self.send_size != self.native


@dataclass(frozen=True)
class RequestPlan:
    images: tuple[ImagePlan, ...]
    processor_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return sum(image.tokens for image in self.images)


def scaled_size(width: int, height: int, longest: int) -> tuple[int, int]:
    """(width, height) with the longest side ``min(longest, native)``, aspect kept, sides >= 1."""
    native = max(width, height)
    if longest >= native:
        return width, height
    scale = longest / native
    return max(1, round(width * scale)), max(1, round(height * scale))


class FamilyPolicy:
    """Base class. Subclasses implement :meth:`plan`; the rest derives from it."""

    #: registry name, e.g. ``"idefics3"``
    name: str = "base"
    #: sizes that cost differently are multiples of this (continuous mode rounds up to it)
    granularity: int = 1

    def plan(self, natives: list[tuple[int, int]], resolutions: list[int | None]) -> RequestPlan:
        raise NotImplementedError

    def visual_tokens(self, width: int, height: int, resolution: int | None = None) -> int:
        """Prompt tokens an image of native ``width`` x ``height`` costs when sent at ``resolution``."""
        return self.plan([(width, height)], [resolution]).images[0].tokens

    def round_up(self, pixels: float, native_long_side: int) -> int | None:
        """Continuous mode: the smallest supported resolution >= ``pixels``; None once it reaches native."""
        step = self.granularity
        value = max(step, math.ceil(pixels / step) * step)
        return None if value >= native_long_side else value

    def describe(self) -> dict[str, Any]:
        return {"family": self.name}
