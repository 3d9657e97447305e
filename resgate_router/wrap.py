"""``router.wrap(client)``: an ``openai.OpenAI``/``AsyncOpenAI`` client whose
``chat.completions.create`` gates the images in ``messages`` first. Everything else passes through.

The rewritten images go in ``messages``; the policy's processor settings go in
``extra_body["mm_processor_kwargs"]`` (validated sizes only) unless ``send_processor_kwargs=False``.
A ``resgate`` entry in ``extra_body`` overrides the gate per request, as the request field does.
A streamed call (``stream=True``) is recorded when the stream ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .router import AsyncRouter
from .router.base import elapsed_ms

if TYPE_CHECKING:
    from .records import SavingsRecord
    from .router import BaseRouter, RoutedRequest, Router

__all__ = ["wrap", "WrappedOpenAI", "AsyncWrappedOpenAI"]


def _chat_request(kwargs: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    override = (kwargs.get("extra_body") or {}).get("resgate")
    return {"model": kwargs.get("model"), "messages": kwargs.get("messages")}, override


def _call_kwargs(kwargs: dict[str, Any], routed: RoutedRequest, send_kwargs: bool) -> dict[str, Any]:
    """The client call's arguments with the routed messages and processor settings."""
    extra_body = dict(kwargs.get("extra_body") or {})
    extra_body.pop("resgate", None)
    extra_body.pop("mm_processor_kwargs", None)  # never forward a caller's own processor kwargs
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
    return out


class _RecordedStream:
    """The client's stream, unchanged to its reader (attributes, ``with``, ``close``), recorded once
    it ends: read to the end or closed (a response), or failed (an error)."""

    def __init__(self, router: BaseRouter, record: SavingsRecord, stream: Any, started: float) -> None:
        self._router, self._record, self._stream, self._started = router, record, stream, started
        self._ended = False

    def _end(self, error: BaseException | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        if error is None:
            self._router.record_response(self._record, None, self._started)
        else:
            self._router.record_error(self._record, error)

    def _chunk(self, chunk: Any) -> Any:
        if self._record.downstream_ms is None:
            self._record.downstream_ms = elapsed_ms(self._started)  # time to the first chunk
        return chunk

    def __iter__(self) -> Iterator[Any]:
        try:
            for chunk in self._stream:
                yield self._chunk(chunk)
        except BaseException as exc:
            self._end(exc)
            raise
        self._end()

    def close(self) -> None:
        self._stream.close()
        self._end()

    def __enter__(self) -> _RecordedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _AsyncRecordedStream(_RecordedStream):
    async def __aiter__(self) -> AsyncIterator[Any]:
        try:
            async for chunk in self._stream:
                yield self._chunk(chunk)
        except BaseException as exc:
            self._end(exc)
            raise
        self._end()

    async def close(self) -> None:  # type: ignore[override]
        await self._stream.close()
        self._end()

    async def __aenter__(self) -> _AsyncRecordedStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _called(router: BaseRouter, record: SavingsRecord, stream: bool, result: Any, started: float) -> Any:
    if stream:
        cls = _AsyncRecordedStream if hasattr(result, "__aiter__") else _RecordedStream
        return cls(router, record, result, started)
    router.record_response(record, result, started)
    return result


class _Completions:
    def __init__(self, wrapper: WrappedOpenAI) -> None:
        self._wrapper = wrapper

    def create(self, **kwargs: Any) -> Any:
        router, client = self._wrapper._router, self._wrapper._client
        assert not isinstance(router, AsyncRouter), "wrap() gives a sync client a Router"
        routed = router.routed(*_chat_request(kwargs))
        started = time.perf_counter()
        try:
            result = client.chat.completions.create(**_call_kwargs(kwargs, routed, self._wrapper._send_kwargs))
        except BaseException as exc:
            router.record_error(routed.record, exc, started)
            raise
        return _called(router, routed.record, bool(kwargs.get("stream")), result, started)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapper._client.chat.completions, name)


class _AsyncCompletions(_Completions):
    async def create(self, **kwargs: Any) -> Any:
        router, client = self._wrapper._router, self._wrapper._client
        if isinstance(router, AsyncRouter):
            routed = await router.routed(*_chat_request(kwargs))
        else:
            routed = await asyncio.to_thread(router.routed, *_chat_request(kwargs))
        started = time.perf_counter()
        try:
            result = await client.chat.completions.create(**_call_kwargs(kwargs, routed, self._wrapper._send_kwargs))
        except BaseException as exc:
            router.record_error(routed.record, exc, started)
            raise
        return _called(router, routed.record, bool(kwargs.get("stream")), result, started)


class _Chat:
    def __init__(self, wrapper: WrappedOpenAI, completions: type[_Completions]) -> None:
        self._wrapper = wrapper
        self.completions = completions(wrapper)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapper._client.chat, name)


class WrappedOpenAI:
    """Behaves like the wrapped ``openai.OpenAI`` client; ``chat.completions.create`` is gated."""

    _completions = _Completions

    def __init__(self, client: Any, router: Router | AsyncRouter, *, send_processor_kwargs: bool = True) -> None:
        self._client, self._router, self._send_kwargs = client, router, send_processor_kwargs
        self.chat = _Chat(self, self._completions)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class AsyncWrappedOpenAI(WrappedOpenAI):
    """The ``openai.AsyncOpenAI`` twin: the gate runs in a worker thread, the call is awaited."""

    _completions = _AsyncCompletions


def wrap(router: Router | AsyncRouter, client: Any, *, send_processor_kwargs: bool = True) -> WrappedOpenAI:
    try:
        import openai
    except ImportError as exc:
        raise ConfigError("wrap() needs the 'openai' package: pip install openai") from exc
    if isinstance(client, openai.AsyncOpenAI):
        return AsyncWrappedOpenAI(client, router, send_processor_kwargs=send_processor_kwargs)
    if isinstance(client, openai.OpenAI):
        if isinstance(router, AsyncRouter):
            raise ConfigError("a sync openai.OpenAI client takes a Router; an AsyncRouter wraps openai.AsyncOpenAI")
        return WrappedOpenAI(client, router, send_processor_kwargs=send_processor_kwargs)
    raise ConfigError(f"wrap() takes an openai.OpenAI or openai.AsyncOpenAI client, got {type(client).__name__}")
