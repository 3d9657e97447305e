"""What the learned gates (PyTorch and ONNX) share: decode images in parallel, run the model in
chunks of ``batch_size``, turn each row of probabilities into a :class:`GateDecision`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError, InputError
from ..images import ImageInput, load_image
from .decision import GateDecision
from .protocol import GateBasics

__all__ = ["BatchedGate", "GATE_OPTIONS", "check_options"]

#: the run-time options every learned gate's loader takes besides its own (``load_gate`` passes them on)
GATE_OPTIONS = frozenset({"max_pixels", "batch_size"})


def check_options(kind: str, options: dict[str, Any], own: frozenset[str] = frozenset()) -> None:
    """A :class:`ConfigError` naming each option ``kind`` does not take (never a ``TypeError``);
    ``own`` are the kind's options besides :data:`GATE_OPTIONS`."""
    unknown = sorted(set(options) - GATE_OPTIONS - own)
    if unknown:
        raise ConfigError(f"a {kind} gate does not take the option(s) {', '.join(map(repr, unknown))}")


class BatchedGate(GateBasics):
    """Subclasses set ``ladder``, ``config.class_names``, ``batch_size``, ``max_pixels`` and ``_pool``
    (a thread pool) and implement ``logits(images, questions)`` and ``probabilities(logits)``."""

    ladder: Any
    config: Any
    needs_pixels = True
    batch_size: int
    max_pixels: int
    _pool: Any

    def logits(self, images: Sequence[ImageInput], questions: Sequence[object]) -> Any:
        raise NotImplementedError

    def probabilities(self, logits: Any) -> Any:
        raise NotImplementedError

    def predict_batch(self, images: Sequence[ImageInput], questions: Sequence[str]) -> list[GateDecision]:
        """One decision per (image, question); equal to calling :meth:`predict` on each."""
        if isinstance(questions, str) or len(images) != len(questions):
            raise InputError("images and questions must be sequences of the same length")
        loaded = list(self._pool.map(lambda im: load_image(im, max_pixels=self.max_pixels), images))
        decisions: list[GateDecision] = []
        for start in range(0, len(loaded), self.batch_size):
            chunk = loaded[start : start + self.batch_size]
            probs = self.probabilities(self.logits(chunk, questions[start : start + self.batch_size]))
            decisions.extend(
                GateDecision.from_probabilities(p, self.ladder, self.config.class_names, max(im.size))
                for p, im in zip(probs.tolist(), chunk)
            )
        return decisions
