"""OpenAI-compatible HTTP upstreams (vLLM, SGLang, TGI, hosted APIs) over httpx2.

Images go as data URLs. The policy's processor settings go as vLLM's top-level
``mm_processor_kwargs`` (the upstream must run with ``--trust-request-mm-kwargs``; turn
``send_processor_kwargs`` off for upstreams that reject unknown fields). Only validated size values
are ever sent: a client-chosen kwarg such as ``do_resize: false`` can kill a vLLM engine.
Retries with exponential backoff on connection failures, 429 and 5xx, honouring ``Retry-After``.
The API key comes from the argument, ``RESGATE_UPSTREAM_API_KEY`` or ``OPENAI_API_KEY`` and is never
logged or shown in ``repr``.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import time
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import httpx2
from pydantic import ValidationError

from ..errors import (
    InputError,
    UpstreamConnectionError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from ..messages import to_wire
from .base import Adapter, AsyncAdapter
from .models import ChatRequest, ChatResponse

__all__ = ["OpenAIAdapter", "AsyncOpenAIAdapter", "safe_processor_kwargs"]

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_SIZE_KEYS = ("longest_edge", "shortest_edge")


def safe_processor_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Keep only positive integer ``size`` edges/budgets and ``max_patches``; drop everything else."""
    out: dict[str, Any] = {}
    size = kwargs.get("size")
    if isinstance(size, dict):
        clean = {k: v for k, v in size.items() if k in _SIZE_KEYS and type(v) is int and 0 < v <= 1 << 28}
        if clean:
            out["size"] = clean
    patches = kwargs.get("max_patches")
    if type(patches) is int and 0 < patches <= 64:
        out["max_patches"] = patches
    dropped = sorted(set(kwargs) - set(out))
    if dropped:
        logger.warning("not forwarding unvalidated processor kwargs %s", dropped)
    return out


@contextmanager
def _mapped_errors(url: str) -> Iterator[None]:
    try:
        yield
    except httpx2.TimeoutException as exc:
        raise UpstreamTimeout(f"upstream {url} timed out ({type(exc).__name__})", adapter="openai") from exc
    except httpx2.TransportError as exc:  # refused, reset, DNS, protocol violations
        raise UpstreamConnectionError(
            f"upstream {url} unreachable: {type(exc).__name__}: {exc}", adapter="openai"
        ) from exc


C = TypeVar("C", httpx2.Client, httpx2.AsyncClient)


def _checked_client(client: C | None, kind: type[C]) -> C | None:
    """``client`` if it is a ``kind`` (or None). A client of another kind (one of ``httpx``, the
    package this adapter used before ``httpx2``, or sync for async) is a TypeError here, rather than
    exceptions the adapter's error mapping does not know at the first request."""
    if client is not None and not isinstance(client, kind):
        theirs = type(client)
        raise TypeError(
            f"http_client must be an {kind.__module__.split('.')[0]}.{kind.__name__}, "
            f"got {theirs.__module__.split('.')[0]}.{theirs.__name__}"
        )
    return client


class _OpenAIBase:
    name = "openai"
    client: httpx2.Client | httpx2.AsyncClient

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        connect_timeout: float = 10.0,
        max_retries: int = 2,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        send_processor_kwargs: bool = True,
        jpeg_quality: int = 95,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key or os.environ.get("RESGATE_UPSTREAM_API_KEY") or os.environ.get("OPENAI_API_KEY")
        self.timeout = httpx2.Timeout(timeout, connect=connect_timeout)
        self.max_retries, self.backoff, self.max_backoff = max_retries, backoff, max_backoff
        self.send_processor_kwargs, self.jpeg_quality = send_processor_kwargs, jpeg_quality
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        if self._api_key:
            self.headers["Authorization"] = f"Bearer {self._api_key}"
        self.limits = httpx2.Limits(max_connections=200, max_keepalive_connections=50)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key={'***' if self._api_key else None})"

    def payload(self, request: dict[str, Any], processor_kwargs: dict[str, Any], *, stream: bool) -> dict[str, Any]:
        try:
            ChatRequest.model_validate(request)
        except ValidationError as exc:
            raise InputError(f"invalid chat request: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from exc
        body = to_wire(request, quality=self.jpeg_quality)
        body.pop("mm_processor_kwargs", None)  # never forward a client's own kwargs
        body["stream"] = stream
        kwargs = safe_processor_kwargs(processor_kwargs) if self.send_processor_kwargs else {}
        if kwargs:
            body["mm_processor_kwargs"] = kwargs
        return body

    def build_request(self, url: str, body: dict[str, Any], headers: dict[str, str]) -> httpx2.Request:
        """The POST; a body JSON cannot carry (NaN, infinity, a lone surrogate, absurd nesting) is the
        caller's error, not a crash."""
        try:
            return self.client.build_request("POST", url, json=body, headers=headers)
        except (ValueError, RecursionError) as exc:  # UnicodeEncodeError is a ValueError
            raise InputError(f"request cannot be sent as JSON: {str(exc)[:200]}") from exc

    def retry_delay(self, attempt: int, response: httpx2.Response | None) -> float:
        header = response.headers.get("retry-after") if response is not None else None
        if header:
            try:
                return min(self.max_backoff, max(0.0, float(header)))
            except ValueError:
                parsed = email.utils.parsedate_to_datetime(header)
                if parsed is not None:
                    return min(self.max_backoff, max(0.0, parsed.timestamp() - time.time()))
        exponential: float = self.backoff * 2**attempt
        return min(self.max_backoff, exponential)

    def check(self, response: httpx2.Response, body: str) -> None:
        if response.status_code >= 400:
            raise UpstreamStatusError(
                f"upstream answered {response.status_code}: {body[:300]}",
                status_code=response.status_code,
                body=body,
                adapter=self.name,
                retry_after=response.headers.get("retry-after"),
            )

    def parse(self, response: httpx2.Response) -> ChatResponse:
        try:
            return ChatResponse.model_validate(response.json())
        except (json.JSONDecodeError, UnicodeDecodeError, ValidationError) as exc:
            raise UpstreamProtocolError(f"upstream sent an invalid chat completion: {exc}", adapter=self.name) from exc

    @staticmethod
    def sse_chunk(line: str) -> dict[str, Any] | None:
        """One parsed ``data:`` line; None for keep-alives and comments; raises on bad JSON."""
        if not line.startswith("data:"):
            return None
        data = line[5:].strip()
        try:
            return cast(dict[str, Any], json.loads(data))
        except json.JSONDecodeError as exc:
            raise UpstreamProtocolError(f"upstream sent an invalid stream chunk: {data[:200]!r}") from exc


class OpenAIAdapter(_OpenAIBase, Adapter):
    """Synchronous adapter with a pooled ``httpx2.Client`` (pass ``http_client`` to bring your own)."""

    client: httpx2.Client

    def __init__(self, base_url: str, *, http_client: httpx2.Client | None = None, **options: Any) -> None:
        super().__init__(base_url, **options)
        self.client = _checked_client(http_client, httpx2.Client) or httpx2.Client(
            timeout=self.timeout, limits=self.limits
        )

    def _post(self, body: dict[str, Any], *, stream: bool) -> httpx2.Response:
        url = f"{self.base_url}/chat/completions"
        request = self.build_request(url, body, self.headers)  # encoded once, sent again on a retry
        for attempt in range(self.max_retries + 1):
            try:
                with _mapped_errors(url):
                    response = self.client.send(request, stream=stream)
            except UpstreamConnectionError:
                if attempt == self.max_retries:
                    raise
                time.sleep(self.retry_delay(attempt, None))
                continue
            if response.status_code in RETRY_STATUSES and attempt < self.max_retries:
                response.close()
                time.sleep(self.retry_delay(attempt, response))
                continue
            if response.status_code >= 400:
                with _mapped_errors(url):
                    text = response.read().decode("utf-8", "replace")
                response.close()
                self.check(response, text)
            return response
        raise AssertionError("unreachable")

    def complete(self, request: dict[str, Any], *, processor_kwargs: dict[str, Any]) -> ChatResponse:
        response = self._post(self.payload(request, processor_kwargs, stream=False), stream=False)
        return self.parse(response)

    def stream(self, request: dict[str, Any], *, processor_kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The upstream's SSE chunks, parsed, one by one; raises if the stream ends before ``[DONE]``."""
        response = self._post(self.payload(request, processor_kwargs, stream=True), stream=True)
        try:
            with _mapped_errors(self.base_url):
                for line in response.iter_lines():
                    if line.strip() == "data: [DONE]":
                        return
                    chunk = self.sse_chunk(line)
                    if chunk is not None:
                        yield chunk
            raise UpstreamProtocolError("upstream stream ended before [DONE]", adapter=self.name)
        finally:
            response.close()

    def close(self) -> None:
        self.client.close()


class AsyncOpenAIAdapter(_OpenAIBase, AsyncAdapter):
    """The asyncio twin, on a pooled ``httpx2.AsyncClient``."""

    client: httpx2.AsyncClient

    def __init__(self, base_url: str, *, http_client: httpx2.AsyncClient | None = None, **options: Any) -> None:
        super().__init__(base_url, **options)
        self.client = _checked_client(http_client, httpx2.AsyncClient) or httpx2.AsyncClient(
            timeout=self.timeout, limits=self.limits
        )

    async def _post(
        self, body: dict[str, Any], *, stream: bool, headers: dict[str, str] | None = None
    ) -> httpx2.Response:
        url = f"{self.base_url}/chat/completions"
        request = self.build_request(url, body, {**self.headers, **(headers or {})})  # encoded once
        for attempt in range(self.max_retries + 1):
            try:
                with _mapped_errors(url):
                    response = await self.client.send(request, stream=stream)
            except UpstreamConnectionError:
                if attempt == self.max_retries:
                    raise
                await asyncio.sleep(self.retry_delay(attempt, None))
                continue
            if response.status_code in RETRY_STATUSES and attempt < self.max_retries:
                await response.aclose()
                await asyncio.sleep(self.retry_delay(attempt, response))
                continue
            if response.status_code >= 400:
                with _mapped_errors(url):
                    text = (await response.aread()).decode("utf-8", "replace")
                await response.aclose()
                self.check(response, text)
            return response
        raise AssertionError("unreachable")

    async def acomplete(
        self, request: dict[str, Any], *, processor_kwargs: dict[str, Any], headers: dict[str, str] | None = None
    ) -> ChatResponse:
        """``headers`` are added to this request only (a proxy passes the client's Authorization)."""
        body = self.payload(request, processor_kwargs, stream=False)
        return self.parse(await self._post(body, stream=False, headers=headers))

    async def aforward(
        self, request: dict[str, Any], *, processor_kwargs: dict[str, Any], headers: dict[str, str] | None = None
    ) -> httpx2.Response:
        """The upstream's response as it came, checked to be a chat completion (a 200 that is not one
        is an :class:`UpstreamProtocolError`): for a proxy, which forwards its bytes."""
        body = self.payload(request, processor_kwargs, stream=False)
        response = await self._post(body, stream=False, headers=headers)
        self.parse(response)
        return response

    async def astream(
        self, request: dict[str, Any], *, processor_kwargs: dict[str, Any], headers: dict[str, str] | None = None
    ) -> AsyncGenerator[dict[str, Any], None]:
        response = await self._post(self.payload(request, processor_kwargs, stream=True), stream=True, headers=headers)
        try:
            with _mapped_errors(self.base_url):
                async for line in response.aiter_lines():
                    if line.strip() == "data: [DONE]":
                        return
                    chunk = self.sse_chunk(line)
                    if chunk is not None:
                        yield chunk
            raise UpstreamProtocolError("upstream stream ended before [DONE]", adapter=self.name)
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        await self.client.aclose()
