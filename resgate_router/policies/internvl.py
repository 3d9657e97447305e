"""InternVL 2.5 / 3: 448 px tiles on the aspect-ratio grid closest to the image's (at most
``max_patches`` tiles), plus a thumbnail when there is more than one tile; 256 tokens per tile,
between ``<img>`` and ``</img>``.

The grid depends on the aspect ratio far more than on the size, so the lever is the tile budget:
a numeric rung r allows ``ceil(min(r, native) / 448) ** 2`` tiles (capped by the model's maximum)
and the image is pre-resized to ``min(r, native)``. The grid arithmetic mirrors transformers'
``get_optimal_tiled_canvas`` (GotOcr2 image processor, which InternVL uses).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..ladder import FULL, Rung
from .base import FamilyPolicy, ImagePlan, RequestPlan, scaled_size

__all__ = ["InternVLPolicy"]


def optimal_grid(width: int, height: int, tile: int, min_tiles: int, max_tiles: int) -> tuple[int, int]:
    """(cols, rows) chosen by InternVL's closest-aspect-ratio rule."""
    grids = sorted(
        ((w, h) for w in range(1, max_tiles + 1) for h in range(1, max_tiles + 1) if min_tiles <= w * h <= max_tiles),
        key=lambda g: g[0] * g[1],
    )
    aspect, area = width / height, width * height
    best, best_diff = (1, 1), float("inf")
    for grid in grids:
        diff = abs(aspect - grid[0] / grid[1])
        if diff < best_diff:
            best, best_diff = grid, diff
        elif diff == best_diff and area > 0.5 * tile * tile * grid[0] * grid[1]:
            best = grid
    return best


class InternVLPolicy(FamilyPolicy):
    name = "internvl"

    def __init__(
        self,
        *,
        tile_size: int = 448,
        tokens_per_tile: int = 256,
        min_patches: int = 1,
        max_patches: int = 12,
        use_thumbnail: bool = True,
    ) -> None:
        self.tile_size, self.tokens_per_tile = tile_size, tokens_per_tile
        self.min_patches, self.max_patches, self.use_thumbnail = min_patches, max_patches, use_thumbnail
        self.granularity = tile_size

    def budget(self, longest: int) -> int:
        return max(self.min_patches, min(self.max_patches, math.ceil(longest / self.tile_size) ** 2))

    def tiles(self, width: int, height: int, max_patches: int) -> int:
        cols, rows = optimal_grid(width, height, self.tile_size, self.min_patches, max_patches)
        count = cols * rows
        return count + 1 if self.use_thumbnail and count > 1 else count

    def plan(self, natives: list[tuple[int, int]], rungs: Sequence[Rung]) -> RequestPlan:
        planned, budgets = [], []
        for (width, height), rung in zip(natives, rungs):
            if rung == FULL:
                send, budget = (width, height), self.max_patches
            else:
                send = scaled_size(width, height, int(rung))
                budget = self.budget(max(send))
            budgets.append(budget)
            planned.append(ImagePlan((width, height), rung, send, 0))
        request_budget = max(budgets, default=self.max_patches)
        kwargs = {} if request_budget == self.max_patches else {"max_patches": request_budget}
        # one budget per request: recount every image under the request's budget
        images = []
        for plan in planned:
            tiles = self.tiles(*plan.send_size, request_budget)
            images.append(
                ImagePlan(plan.native, plan.rung, plan.send_size, tiles * self.tokens_per_tile + 2, tiles=tiles)
            )
        return RequestPlan(tuple(images), kwargs)

    def describe(self) -> dict[str, Any]:
        return {"family": self.name, "tile_size": self.tile_size, "max_patches": self.max_patches}
