"""``router.wrap(client)``: an ``openai.OpenAI``/``AsyncOpenAI`` client whose
``chat.completions.create`` gates the images in ``messages`` first. Everything else passes through.

The rewritten images go in ``messages``; the policy's processor settings go in
``extra_body["mm_processor_kwargs"]`` (validated sizes only) unless ``send_processor_kwargs=False``.
A ``resgate`` entry in ``extra_body`` overrides the gate per request, as the request field does.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .router import Router

__all__ = ["wrap", "WrappedOpenAI", "AsyncWrappedOpenAI"]


def _prepare(router: Router, kwargs: dict[str, Any], send_kwargs: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    extra_body = dict(kwargs.get("extra_body") or {})
    override = extra_body.pop("resgate", None)
    extra_body.pop("mm_processor_kwargs", None)  # never forward a caller's own processor kwargs
    routed = router.route({"model": kwargs.get("model"), "messages": kwargs.get("messages")}, override=override)
    record = routed.record
    out = dict(kwargs)
    if "messages" in kwargs:  # else the client raises its own missing-argument error, as unwrapped
        out["messages"] = routed.request["messages"]
    if send_kwargs and routed.processor_kwargs:
        from .adapters.openai_http import safe_processor_kwargs

        extra_body["mm_processor_kwargs"] = safe_processor_kwargs(routed.processor_kwargs)
    if extra_body:
        out["extra_body"] = extra_body
    else:
        out.pop("extra_body", None)
    return out, record


class _Completions:
    def __init__(self, wrapper: WrappedOpenAI) -> None:
        self._wrapper = wrapper

    def create(self, **kwargs: Any) -> Any:
        router, client = self._wrapper._router, self._wrapper._client
        request, record = _prepare(router, kwargs, self._wrapper._send_kwargs)
        with router.recorded(record):
            return client.chat.completions.create(**request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapper._client.chat.completions, name)


class _AsyncCompletions(_Completions):
    async def create(self, **kwargs: Any) -> Any:  # type: ignore[override]
        router, client = self._wrapper._router, self._wrapper._client
        request, record = await asyncio.to_thread(_prepare, router, kwargs, self._wrapper._send_kwargs)
        with router.recorded(record):
            return await client.chat.completions.create(**request)


class _Chat:
    def __init__(self, wrapper: WrappedOpenAI, completions: type[_Completions]) -> None:
        self._wrapper = wrapper
        self.completions = completions(wrapper)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapper._client.chat, name)


class WrappedOpenAI:
    """Behaves like the wrapped ``openai.OpenAI`` client; ``chat.completions.create`` is gated."""

    _completions = _Completions

    def __init__(self, client: Any, router: Router, *, send_processor_kwargs: bool = True) -> None:
        self._client, self._router, self._send_kwargs = client, router, send_processor_kwargs
        self.chat = _Chat(self, self._completions)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class AsyncWrappedOpenAI(WrappedOpenAI):
    """The ``openai.AsyncOpenAI`` twin: the gate runs in a worker thread, the call is awaited."""

    _completions = _AsyncCompletions


def wrap(router: Router, client: Any, *, send_processor_kwargs: bool = True) -> WrappedOpenAI:
    try:
        import openai
    except ImportError as exc:
        raise ConfigError("wrap() needs the 'openai' package: pip install openai") from exc
    if isinstance(client, openai.AsyncOpenAI):
        return AsyncWrappedOpenAI(client, router, send_processor_kwargs=send_processor_kwargs)
    if isinstance(client, openai.OpenAI):
        return WrappedOpenAI(client, router, send_processor_kwargs=send_processor_kwargs)
    raise ConfigError(f"wrap() takes an openai.OpenAI or openai.AsyncOpenAI client, got {type(client).__name__}")
