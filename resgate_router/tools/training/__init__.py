"""Training and evaluating gates: feature cache (``features``), head training (``trainer``),
metrics and plots (``report``), and the end-to-end ``train_gate`` / ``evaluate_gate`` (``pipeline``).
Needs the ``train`` extra; importing this package alone loads nothing heavy."""

from __future__ import annotations

from typing import Any

__all__ = ["train_gate", "evaluate_gate", "TrainConfig"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ..._extras import require

        require("train", "torch", "sklearn", "tqdm", "matplotlib")
        from . import pipeline, trainer

        return getattr(pipeline if hasattr(pipeline, name) else trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
