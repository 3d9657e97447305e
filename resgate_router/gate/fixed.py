"""``FixedGate``: always the same class (a constant decision), for baselines, A/B tests and benchmarks
of everything around the gate. Needs no model, no torch."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

from ..errors import ConfigError
from ..images import ImageInput, load_image
from ..ladder import FULL, Ladder
from .decision import GateDecision, default_class_names

__all__ = ["FixedGate"]


class FixedGate:
    needs_pixels = False  # the decision never depends on the image

    def __init__(self, label: int, ladder: str | Ladder = "card", class_names: Sequence[str] | None = None) -> None:
        self.ladder = Ladder.parse(ladder)
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(self.ladder):
            classes = f"{self.ladder.to_list()} (0..{len(self.ladder) - 1})"
            raise ConfigError(f"fixed class {label!r} is not a class of the ladder {classes}")
        self.label = label
        names = list(class_names or default_class_names(len(self.ladder)))
        self.config = SimpleNamespace(class_names=names, num_classes=len(self.ladder))

    @property
    def class_names(self) -> list[str]:
        return list(self.config.class_names)

    def predict_batch(self, images: Sequence[ImageInput | None], questions: Sequence[str]) -> list[GateDecision]:
        """The fixed class for each image. A full rung's expected resolution is the image's own longest
        side when an image is given (the router passes none: it knows the size from the header)."""
        one_hot = [1.0 if k == self.label else 0.0 for k in range(len(self.ladder))]
        full = self.ladder[self.label] == FULL
        return [
            GateDecision.from_probabilities(
                one_hot,
                self.ladder,
                self.config.class_names,
                max(load_image(im).size) if full and im is not None else 0,
            )
            for im in images
        ]

    def predict(self, image: ImageInput | None, question: str) -> GateDecision:
        return self.predict_batch([image], [question])[0]
