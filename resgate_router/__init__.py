"""resgate-router: pick, per request, the smallest image resolution a VLM needs.

Importing this package is light: no torch, transformers or onnxruntime. ``SmolVLMGate`` and
``GraniteDoclingGate`` load torch and transformers on first use (``SmolVLMGate`` also registers the
``resgate`` model type with transformers' ``AutoConfig``/``AutoModel``); ``OnnxGate`` loads onnxruntime.
"""

from __future__ import annotations

from typing import Any

from .errors import (
    AdapterError,
    AdapterNotFoundError,
    ConfigError,
    ForbiddenURLError,
    GateError,
    GateLoadError,
    GateTimeoutError,
    ImageError,
    ImageTooLargeError,
    InputError,
    MissingExtraError,
    QuestionError,
    ResgateError,
    UpstreamConnectionError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from .gate import FixedGate, GateDecision, LegibilityGate, load_gate
from .images import load_image
from .ladder import FULL, Ladder
from .ledger import SavingsLog
from .monitoring import RoutingStats
from .policies import FamilyPolicy, available_families, get_policy
from .router import RoutedRequest, Router, RouterResponse

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "SmolVLMGate",
    "GraniteDoclingGate",
    "OnnxGate",
    "LegibilityGate",
    "FixedGate",
    "load_gate",
    "GateDecision",
    "Router",
    "RoutedRequest",
    "RouterResponse",
    "RoutingStats",
    "SavingsLog",
    "FamilyPolicy",
    "get_policy",
    "available_families",
    "GateTimeoutError",
    "Ladder",
    "FULL",
    "load_image",
    "ResgateError",
    "ConfigError",
    "InputError",
    "ImageError",
    "ImageTooLargeError",
    "ForbiddenURLError",
    "QuestionError",
    "GateError",
    "GateLoadError",
    "MissingExtraError",
    "AdapterError",
    "AdapterNotFoundError",
    "UpstreamConnectionError",
    "UpstreamStatusError",
    "UpstreamTimeout",
    "UpstreamProtocolError",
]


_LAZY_GATES = ("SmolVLMGate", "GraniteDoclingGate", "OnnxGate")  # heavy: imported on first use


def __getattr__(name: str) -> Any:
    if name in _LAZY_GATES:
        from . import gate

        return getattr(gate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
