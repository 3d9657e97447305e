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
from .gate.protocol import Gate
from .hooks import Hooks
from .images import load_image
from .ladder import FULL, Ladder
from .policies import FamilyPolicy, available_families, get_policy
from .records import ImageRecord, SavingsRecord
from .router import AsyncRouter, BaseRouter, RoutedRequest, Router, RouterResponse
from .savings_log import SavingsLog
from .stats import RoutingStats

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
    "Gate",
    "BaseRouter",
    "Router",
    "AsyncRouter",
    "Hooks",
    "SavingsRecord",
    "ImageRecord",
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
