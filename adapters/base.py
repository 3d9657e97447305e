"""The adapter protocol: send an already-routed request downstream and return its response.

Adapters never see the gate. ``processor_kwargs`` are the family policy's per-request processor
settings (e.g. ``{"size": {"longest_edge": 512}}`` for Idefics3); an adapter applies them the way
its downstream takes them, or ignores them if it cannot. The full set of adapters (vLLM, Hugging
Face, OpenAI-compatible HTTP) builds on this base.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Adapter", "CallableAdapter"]


class Adapter:
    def complete(self, request: dict[str, Any], *, processor_kwargs: dict[str, Any]) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections or engines. Idempotent."""

    def __enter__(self) -> Adapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CallableAdapter(Adapter):
    """Any ``fn(request, processor_kwargs) -> response`` as an adapter."""

    def __init__(self, fn: Callable[[dict[str, Any], dict[str, Any]], Any]) -> None:
        self.fn = fn

    def complete(self, request: dict[str, Any], *, processor_kwargs: dict[str, Any]) -> Any:
        return self.fn(request, processor_kwargs)
