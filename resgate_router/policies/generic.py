"""Any other downstream: pre-resize only; tokens estimated as one per ``patch_size`` square
(after ``merge`` x ``merge`` merging), on the image as sent."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..ladder import FULL, Rung
from .base import FamilyPolicy, ImagePlan, RequestPlan, scaled_size

__all__ = ["GenericPolicy"]


class GenericPolicy(FamilyPolicy):
    name = "generic"

    def __init__(self, *, patch_size: int = 14, merge: int = 1) -> None:
        self.patch_size, self.merge = patch_size, merge
        self.granularity = patch_size * merge

    def plan(self, natives: list[tuple[int, int]], rungs: Sequence[Rung]) -> RequestPlan:
        images = []
        for (width, height), rung in zip(natives, rungs):
            send = (width, height) if rung == FULL else scaled_size(width, height, int(rung))
            step = self.patch_size * self.merge
            images.append(ImagePlan((width, height), rung, send, math.ceil(send[0] / step) * math.ceil(send[1] / step)))
        return RequestPlan(tuple(images))

    def describe(self) -> dict[str, Any]:
        return {"family": self.name, "patch_size": self.patch_size, "merge": self.merge}
