"""Downstream adapters, installed as ``resgate_router.adapters``.

``OpenAIAdapter``/``AsyncOpenAIAdapter`` (any OpenAI-compatible HTTP endpoint) live in
``resgate_router.adapters.openai_http``; adapters are also found by name with
:func:`get_adapter_class` (entry-point group ``resgate_router.adapters``).
"""

from .base import Adapter, AsyncAdapter, CallableAdapter, available_adapters, get_adapter_class
from .models import ChatRequest, ChatResponse, Usage

__all__ = [
    "Adapter",
    "AsyncAdapter",
    "CallableAdapter",
    "get_adapter_class",
    "available_adapters",
    "ChatRequest",
    "ChatResponse",
    "Usage",
]
