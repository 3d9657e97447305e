"""Resolution gates. ``GateDecision`` is light; ``SmolVLMGate`` needs the ``hf`` extra (torch, transformers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .decision import GateDecision
from .fixed import FixedGate
from .legibility import LegibilityGate
from .loading import load_gate

if TYPE_CHECKING:
    from .granite import GraniteDoclingGate
    from .onnx import OnnxGate
    from .smolvlm import SmolVLMGate

__all__ = [
    "GateDecision",
    "FixedGate",
    "SmolVLMGate",
    "GraniteDoclingGate",
    "OnnxGate",
    "LegibilityGate",
    "load_gate",
]


def __getattr__(name: str) -> Any:
    if name == "SmolVLMGate":
        from .._extras import require

        require("hf", "torch", "transformers")
        from .smolvlm import SmolVLMGate

        return SmolVLMGate
    if name == "GraniteDoclingGate":
        from .._extras import require

        require("lora", "torch", "transformers", "peft")
        from .granite import GraniteDoclingGate

        return GraniteDoclingGate
    if name == "OnnxGate":
        from .._extras import require

        require("onnx", "onnxruntime", "tokenizers")
        from .onnx import OnnxGate

        return OnnxGate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
