"""The adapter protocol: send an already-routed request downstream and return its response.

Adapters never see the gate. ``processor_kwargs`` are the family policy's per-request processor
settings (e.g. ``{"size": {"longest_edge": 512}}`` for Idefics3); an adapter applies them the way its
downstream takes them. Sync adapters implement :class:`Adapter`, async ones :class:`AsyncAdapter`
(one class may do both). Third-party adapters register in the ``resgate_router.adapters``
entry-point group; :func:`get_adapter_class` imports only the one asked for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from importlib.metadata import entry_points
from typing import Any, cast

from ..errors import AdapterNotFoundError

__all__ = [
    "Adapter",
    "AsyncAdapter",
    "CallableAdapter",
    "ENTRY_POINT_GROUP",
    "get_adapter_class",
    "available_adapters",
    "build_adapters",
]

ENTRY_POINT_GROUP = "resgate_router.adapters"


class Adapter:
    name = "adapter"
    #: True for an in-process downstream that takes PIL images: the router hands it the pixels
    #: (resized, or as decoded) instead of re-encoding them as data URLs
    takes_images = False

    def complete(self, request: dict[str, Any], *, processor_kwargs: dict[str, Any]) -> Any:
        raise NotImplementedError

    def stream(self, request: dict[str, Any], *, processor_kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        raise NotImplementedError(f"{type(self).__name__} does not stream")

    def close(self) -> None:
        """Release connections or engines. Idempotent."""

    def __enter__(self) -> Adapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncAdapter:
    name = "adapter"
    takes_images = False

    async def acomplete(self, request: dict[str, Any], *, processor_kwargs: dict[str, Any]) -> Any:
        raise NotImplementedError

    def astream(self, request: dict[str, Any], *, processor_kwargs: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        raise NotImplementedError(f"{type(self).__name__} does not stream")

    async def aclose(self) -> None:
        """Release connections. Idempotent."""


class CallableAdapter(Adapter):
    """Any ``fn(request, processor_kwargs) -> response`` as an adapter."""

    name = "callable"

    def __init__(self, fn: Callable[[dict[str, Any], dict[str, Any]], Any]) -> None:
        self.fn = fn

    def complete(self, request: dict[str, Any], *, processor_kwargs: dict[str, Any]) -> Any:
        return self.fn(request, processor_kwargs)


def available_adapters() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


def get_adapter_class(name: str) -> type:
    """The adapter class registered as ``name`` (only that module is imported)."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return cast(type, ep.load())
    raise AdapterNotFoundError(f"no adapter named {name!r}; available: {available_adapters()}", adapter=name)


def build_adapters(spec: str, **options: Any) -> list[Any]:
    """Adapters from a command-line spec ``NAME[:ARG]``: ``ocr``, ``hf:MODEL_DIR``, ``vllm:MODEL_DIR``,
    ``openai:URL[,URL...]`` (one adapter per upstream, for round-robin). ``ARG`` is the adapter's
    first argument; ``options`` its keyword arguments."""
    name, _, arg = spec.partition(":")
    cls = get_adapter_class(name.strip())
    if not arg:
        return [cls(**options)]
    args = [a.strip() for a in arg.split(",") if a.strip()] if name.startswith("openai") else [arg]
    return [cls(a, **options) for a in args]
