"""The result of gating one (image, question) pair."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ..ladder import Ladder, Rung

if TYPE_CHECKING:
    from ..policies import FamilyPolicy

__all__ = ["GateDecision", "default_class_names", "upgrade_at_equal_cost", "upgrade_within"]


def default_class_names(num_classes: int) -> list[str]:
    if num_classes == 2:
        return ["low", "high"]
    if num_classes == 3:
        return ["low", "medium", "high"]
    return [f"class_{k}" for k in range(num_classes)]


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

    @classmethod
    def from_probabilities(
        cls, probabilities: Sequence[float], ladder: Ladder, class_names: Sequence[str], native_long_side: int
    ) -> GateDecision:
        """The decision for one image: the most probable class, its rung and the continuous estimate."""
        probs = tuple(float(p) for p in probabilities)
        label = max(range(len(probs)), key=probs.__getitem__)
        return cls(label, ladder[label], probs, ladder.expected_resolution(probs, native_long_side), class_names[label])

    @property
    def confidence(self) -> float:
        """The probability of the chosen class."""
        return max(self.probabilities)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["probabilities"] = list(self.probabilities)
        data["confidence"] = self.confidence
        return data


def upgrade_at_equal_cost(label: int, ladder: Ladder, policy: FamilyPolicy | None, size: tuple[int, int]) -> int:
    """The largest class from ``label`` up whose rung costs ``policy`` no more tokens than ``label``'s
    for an image of ``size``: more pixels for free (``label`` itself when there is no policy)."""
    if policy is None:
        return label
    return upgrade_within(label, [policy.visual_tokens(*size, r) for r in ladder.rungs])


def upgrade_within(label: int, costs: Sequence[float]) -> int:
    """The largest class from ``label`` up whose cost (one per class) is no more than ``label``'s."""
    while label + 1 < len(costs) and costs[label + 1] <= costs[label]:
        label += 1
    return label
