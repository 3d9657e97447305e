"""``SavingsRecord``: what the router knows about one request, one JSON object per line in the
savings log. The fields (and their JSON names) are the log's format: keep them."""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from .ladder import Rung

__all__ = ["ImageRecord", "SavingsRecord"]

_OPTIONAL_IMAGE_FIELDS = (
    "question",
    "confidence",
    "expected_resolution",
    "sent",
    "baseline_tokens",
    "routed_tokens",
    "saved_tokens",
)


@dataclass
class ImageRecord:
    """One image: its native size, the class chosen (``source``: gate, override or fallback), the rung
    it was sent at and, once planned, its size on the wire and its tokens."""

    native: list[int]
    label: int | None
    class_name: str | None
    source: str
    rung: Rung
    question: str | None = None  # only with log_questions: records carry no prompt text by default
    confidence: float | None = None
    expected_resolution: float | None = None
    sent: list[int] | None = None
    baseline_tokens: int | None = None
    routed_tokens: int | None = None
    saved_tokens: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "native": list(self.native),
            "class": self.label,
            "class_name": self.class_name,
            "source": self.source,
            "target": self.rung,
        }
        for name in _OPTIONAL_IMAGE_FIELDS:
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return data


@dataclass
class SavingsRecord:
    """One request. ``status``: routed, passthrough (no image), disabled (gating off), fallback (the
    gate failed; sent at the baseline) or error (the request failed). Times are milliseconds:
    ``downstream_ms`` is the downstream call's (to the first chunk for a stream)."""

    model: str | None
    family: str
    mode: str
    id: str = field(default_factory=lambda: f"rg-{uuid.uuid4().hex[:16]}")
    time: float = field(default_factory=time.time)
    status: str | None = None
    images: list[ImageRecord] = field(default_factory=list)
    remote_images: int | None = None
    baseline_tokens: int = 0
    routed_tokens: int = 0
    saved_tokens: int = 0
    flops_saved: float | None = None
    gate_ms: float | None = None
    downstream_ms: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Every field, whatever the outcome (null where it does not apply): one shape for all."""
        data = asdict(self)
        data["images"] = [image.to_dict() for image in self.images]
        return data
