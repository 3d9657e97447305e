"""GPT-4o-style hosted APIs: the bill is tiles. ``detail: low`` costs 85 tokens; ``high`` fits the
image in 2048x2048, scales the shortest side down to 768, and costs 85 + 170 per 512 px tile.
A numeric rung <= 512 is sent as ``detail: low``; larger rungs pre-resize and send ``high``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..ladder import FULL, Rung
from .base import FamilyPolicy, ImagePlan, RequestPlan, scaled_size

__all__ = ["OpenAIPolicy"]


class OpenAIPolicy(FamilyPolicy):
    name = "openai"
    granularity = 512

    def __init__(
        self, *, base_tokens: int = 85, tile_tokens: int = 170, usd_per_million_tokens: float | None = None
    ) -> None:
        self.base_tokens, self.tile_tokens = base_tokens, tile_tokens
        self.usd_per_million_tokens = usd_per_million_tokens

    def high_detail_tokens(self, width: int, height: int) -> int:
        scale = min(1.0, 2048 / max(width, height))
        w, h = width * scale, height * scale
        scale = min(1.0, 768 / min(w, h))
        w, h = w * scale, h * scale
        return self.base_tokens + self.tile_tokens * math.ceil(w / 512) * math.ceil(h / 512)

    def plan(self, natives: list[tuple[int, int]], rungs: Sequence[Rung]) -> RequestPlan:
        images = []
        for (width, height), rung in zip(natives, rungs):
            if rung != FULL and int(rung) <= 512:
                send = scaled_size(width, height, 512)
                images.append(ImagePlan((width, height), rung, send, self.base_tokens, detail="low"))
                continue
            send = (width, height) if rung == FULL else scaled_size(width, height, int(rung))
            images.append(
                ImagePlan(
                    (width, height),
                    rung,
                    send,
                    self.high_detail_tokens(*send),
                    detail=None if rung == FULL else "high",
                )
            )
        return RequestPlan(tuple(images))

    def cost_usd(self, tokens: int) -> float | None:
        return None if self.usd_per_million_tokens is None else tokens * self.usd_per_million_tokens / 1e6

    def describe(self) -> dict[str, Any]:
        return {"family": self.name, "usd_per_million_tokens": self.usd_per_million_tokens}
