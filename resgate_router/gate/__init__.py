"""Resolution gates. ``GateDecision`` is light; ``SmolVLMGate`` needs the ``hf`` extra (torch, transformers)."""

from __future__ import annotations

from typing import Any

from .decision import GateDecision
from .fixed import FixedGate

__all__ = ["GateDecision", "FixedGate", "SmolVLMGate"]


def __getattr__(name: str) -> Any:
    if name == "SmolVLMGate":
        from .._extras import require

        require("hf", "torch", "transformers")
        from .smolvlm import SmolVLMGate

        return SmolVLMGate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
