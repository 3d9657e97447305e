"""The result of gating one (image, question) pair."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..ladder import Rung

__all__ = ["GateDecision"]


@dataclass(frozen=True)
class GateDecision:
    """``label``: class index; ``resolution``: its ladder rung (px or ``"full"``);
    ``probabilities``: softmax over classes; ``expected_resolution``: sum_k p_k * r_k in px
    (the paper's continuous mode, a ``full`` rung counted as the image's native longest side)."""

    label: int
    resolution: Rung
    probabilities: tuple[float, ...]
    expected_resolution: float
    class_name: str

    @property
    def confidence(self) -> float:
        """The probability of the chosen class."""
        return max(self.probabilities)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["probabilities"] = list(self.probabilities)
        data["confidence"] = self.confidence
        return data
