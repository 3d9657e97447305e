"""Any other downstream: pre-resize only; tokens estimated as one per ``patch_size`` square
(after ``merge`` x ``merge`` merging), on the image as sent."""

from __future__ import annotations

import math
from typing import Any

from .base import FamilyPolicy, ImagePlan, RequestPlan, scaled_size

__all__ = ["GenericPolicy"]


class GenericPolicy(FamilyPolicy):
    name = "generic"

    def __init__(self, *, patch_size: int = 14, merge: int = 1) -> None:
        self.patch_size, self.merge = patch_size, merge
        self.granularity = patch_size * merge

    def plan(self, natives: list[tuple[int, int]], resolutions: list[int | None]) -> RequestPlan:
        images = []
        for (width, height), resolution in zip(natives, resolutions):
            send = (width, height) if resolution is None else scaled_size(width, height, int(resolution))
            step = self.patch_size * self.merge
            images.append(
                ImagePlan((width, height), resolution, send, math.ceil(send[0] / step) * math.ceil(send[1] / step))
            )
        return RequestPlan(tuple(images))

    def describe(self) -> dict[str, Any]:
        return {"family": self.name, "patch_size": self.patch_size, "merge": self.merge}
