"""``RoutingStats``: running totals of a router's requests for a summary (``print(router.stats)``)."""

from __future__ import annotations

import threading
from collections import Counter as Tally
from typing import Any

from .records import SavingsRecord

__all__ = ["RoutingStats"]


class RoutingStats:
    """Running totals for a summary: requests, class mix, tokens and the share saved."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.statuses: Tally[str] = Tally()
        self.classes: Tally[str] = Tally()
        self.baseline_tokens = self.routed_tokens = 0

    def observe(self, record: SavingsRecord) -> None:
        with self._lock:
            self.requests += 1
            self.statuses[str(record.status)] += 1
            self.classes.update(str(image.class_name) for image in record.images)
            self.baseline_tokens += record.baseline_tokens
            self.routed_tokens += record.routed_tokens

    @property
    def saved_fraction(self) -> float:
        return 1 - self.routed_tokens / self.baseline_tokens if self.baseline_tokens else 0.0

    def summary(self) -> dict[str, Any]:
        with self._lock:
            images = sum(self.classes.values())
            return {
                "requests": self.requests,
                "statuses": dict(self.statuses),
                "images": images,
                "class_mix": {k: v / images for k, v in sorted(self.classes.items())} if images else {},
                "baseline_tokens": self.baseline_tokens,
                "routed_tokens": self.routed_tokens,
                "saved_tokens": self.baseline_tokens - self.routed_tokens,
                "saved_percent": round(100 * self.saved_fraction, 2),
            }

    def __str__(self) -> str:
        s = self.summary()
        mix = ", ".join(f"{k} {v:.0%}" for k, v in s["class_mix"].items()) or "none"
        return (
            f"{s['requests']} requests, {s['images']} images; visual tokens {s['routed_tokens']} routed vs "
            f"{s['baseline_tokens']} baseline ({s['saved_percent']}% saved); class mix: {mix}"
        )
