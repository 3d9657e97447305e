"""The ``Gate`` protocol: what the router needs of a gate. Every gate of this package implements it;
a gate of your own needs these four members, nothing else (no base class). :class:`GateBasics` is
what this package's gates derive from their ``predict_batch`` and ``config``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from PIL import Image

from ..errors import ConfigError
from ..ladder import Ladder
from .decision import GateDecision

__all__ = ["Gate", "GateBasics", "check_gate"]


@runtime_checkable
class Gate(Protocol):
    #: the rung of each class, cheapest first
    ladder: Ladder
    #: False when the decision does not depend on the pixels (the router then decodes nothing for it
    #: and passes ``None`` for each image)
    needs_pixels: bool

    @property
    def class_names(self) -> Sequence[str]: ...

    def predict_batch(
        self, images: Sequence[Image.Image | None], questions: Sequence[str]
    ) -> Sequence[GateDecision]: ...


class GateBasics:
    """``class_names`` (from ``config.class_names``) and ``predict`` (one image, through
    ``predict_batch``), shared by this package's gates."""

    config: Any

    @property
    def class_names(self) -> list[str]:
        return list(self.config.class_names)

    def predict(self, image: Any, question: str) -> GateDecision:
        return self.predict_batch([image], [question])[0]

    def predict_batch(self, images: Sequence[Any], questions: Sequence[str]) -> Sequence[GateDecision]:
        raise NotImplementedError


def check_gate(gate: object) -> Gate:
    """``gate`` itself, or a :class:`ConfigError` naming what it lacks."""
    missing = [name for name in ("ladder", "needs_pixels", "class_names", "predict_batch") if not hasattr(gate, name)]
    if missing:
        raise ConfigError(
            f"{type(gate).__name__} is not a gate: it lacks {', '.join(missing)} (see gate.protocol.Gate)"
        )
    assert isinstance(gate, Gate)
    return gate
