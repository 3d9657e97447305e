"""What a family policy is: how a rung becomes a concrete request, and what an image costs.

A *rung* is a ladder position: a longest side in px (the image is sent with longest side
``min(rung, native)``, never upscaled) or ``FULL`` (``"full"``) for the downstream's default
processing (the baseline without the router).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..ladder import FULL, Rung

__all__ = ["ImagePlan", "RequestPlan", "FamilyPolicy", "scaled_size"]


@dataclass(frozen=True)
class ImagePlan:
    """One image of a request: its native size, the size it is sent at and the tokens it costs."""

    native: tuple[int, int]
    rung: Rung
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

    def plan(self, natives: list[tuple[int, int]], rungs: Sequence[Rung]) -> RequestPlan:
        raise NotImplementedError

    def visual_tokens(self, width: int, height: int, rung: Rung = FULL) -> int:
        """Prompt tokens an image of native ``width`` x ``height`` costs when sent at ``rung``."""
        return self.plan([(width, height)], [rung]).images[0].tokens

    def round_up(self, pixels: float, native_long_side: int) -> Rung:
        """Continuous mode: the smallest supported rung >= ``pixels``; ``FULL`` once it reaches native."""
        step = self.granularity
        value = max(step, math.ceil(pixels / step) * step)
        return FULL if value >= native_long_side else value

    def describe(self) -> dict[str, Any]:
        return {"family": self.name}
