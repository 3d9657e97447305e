"""The OpenAI-compatible proxy: ``create_app(settings)`` builds a FastAPI app (no import-time side
effects); ``resgate serve`` runs it on uvicorn.

POST /v1/chat/completions is gated (streaming too); every other /v1 path is passed through to the
upstream; /healthz, /readyz and /metrics are the proxy's own. Client errors are OpenAI-format 4xx,
upstream failures 502/504. The client's Authorization header goes upstream untouched and is never
logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..adapters.openai_http import AsyncOpenAIAdapter
from ..errors import (
    ConfigError,
    InputError,
    ResgateError,
    UpstreamConnectionError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from ..messages import remote_urls
from ..records import SavingsRecord
from ..router import AsyncRouter, elapsed_ms
from .errors import error_response, fetch_failure
from .routing import build_router
from .settings import ServerSettings

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

_HOP_HEADERS = {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "upgrade", "accept-encoding"}
OVERRIDE_HEADER = "x-resgate-resolution"


def create_app(settings: ServerSettings, *, router: AsyncRouter | None = None) -> FastAPI:
    """``router``: one built elsewhere (tests, benchmarks); by default :func:`build_router` of the
    settings. Its gate calls are micro-batched across concurrent requests."""
    if router is not None and not isinstance(router, AsyncRouter):
        raise ConfigError(f"the proxy runs an AsyncRouter, got {type(router).__name__}")
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["router"] = router or build_router(settings)
        state["adapter"] = AsyncOpenAIAdapter(
            settings.upstream,
            timeout=settings.upstream_timeout_s,
            max_retries=settings.upstream_retries,
            send_processor_kwargs=settings.send_processor_kwargs,
        )
        state["http"] = httpx2.AsyncClient(timeout=settings.upstream_timeout_s)
        try:
            yield
        finally:  # uvicorn drains in-flight requests before this runs
            await state["router"].aclose()  # flushes the savings log
            await state["adapter"].aclose()
            await state["http"].aclose()

    app = FastAPI(title="resgate-router proxy", lifespan=lifespan)

    @app.exception_handler(ResgateError)
    async def _resgate_error(request: Request, exc: ResgateError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(Exception)
    async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        """A bug (ours or a plugged-in component's): still an OpenAI-format answer; the server logs it."""
        return error_response(exc)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        try:
            upstream = await state["http"].get(f"{settings.upstream.rstrip('/')}/models", timeout=5)
            ready = upstream.status_code < 500
        except httpx2.HTTPError:
            ready = False
        body = {
            "status": "ready" if ready else "upstream unavailable",
            "family": state["router"].family,
            "gate": settings.gate,
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        router: AsyncRouter = state["router"]
        try:
            body = await _read_json(request, settings.max_body_bytes)
        except Exception as exc:  # refused before routing: still one record per request
            router.record_rejected({}, exc)
            raise
        routed = await router.routed(body, request.headers.get(OVERRIDE_HEADER))  # records a refusal
        auth = {k: v for k, v in request.headers.items() if k.lower() == "authorization"}
        adapter: AsyncOpenAIAdapter = state["adapter"]
        kwargs = {"processor_kwargs": routed.processor_kwargs, "headers": auth}
        started = time.perf_counter()
        try:
            if body.get("stream"):
                chunks = adapter.astream(routed.request, **kwargs)
                first = await anext(chunks, None)  # a failure before the first chunk is still a 502/504
                routed.record.downstream_ms = elapsed_ms(started)  # to the first chunk, as Router.stream
                return StreamingResponse(_sse(router, routed.record, first, chunks), media_type="text/event-stream")
            upstream = await adapter.aforward(routed.request, **kwargs)
        except Exception as exc:
            # an image URL the upstream could not fetch is the client's problem (400), not our 502
            failure = None
            if isinstance(exc, UpstreamStatusError):
                failure = fetch_failure(exc.status_code, exc.body, remote_urls(routed.request))
            router.record_error(routed.record, failure or exc, started)
            if failure is not None:
                raise failure from exc
            raise
        router.record_response(routed.record, upstream, started)
        headers = {"x-resgate-saved-tokens": str(routed.record.saved_tokens)}
        return Response(upstream.content, media_type="application/json", headers=headers)

    @app.api_route("/v1/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    async def passthrough(path: str, request: Request) -> Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        content = await request.body()
        policy = state["router"].url_policy
        if policy is not None and b"http" in content.lower():  # /v1/responses, /v1/embeddings ... carry URLs too
            await asyncio.to_thread(policy.check_body, content)  # it resolves host names
        try:
            upstream = await state["http"].request(
                request.method,
                f"{settings.upstream.rstrip('/')}/{path}",
                content=content,
                headers=headers,
                params=request.query_params,
            )
        except httpx2.TimeoutException as exc:
            return error_response(UpstreamTimeout(f"upstream timed out: {type(exc).__name__}"))
        except httpx2.TransportError as exc:
            return error_response(UpstreamConnectionError(f"upstream unreachable: {type(exc).__name__}"))
        kept = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS | {"content-encoding"}}
        return Response(upstream.content, status_code=upstream.status_code, headers=kept)

    return app


async def _read_json(request: Request, limit: int) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise InputError(f"request body of {declared} bytes is over the limit of {limit}")
    raw = bytearray()
    async for chunk in request.stream():
        raw.extend(chunk)
        if len(raw) > limit:
            raise InputError(f"request body is over the limit of {limit} bytes")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: absurd nesting
        raise InputError(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InputError("request body must be a JSON object")
    return body


async def _sse(
    router: AsyncRouter,
    record: SavingsRecord,
    first: dict[str, Any] | None,
    chunks: AsyncGenerator[dict[str, Any], None],
) -> AsyncIterator[bytes]:
    """The upstream's chunks, re-framed as SSE; a failure mid-stream ends with an error event. The
    request is recorded once however the stream ends (``recorded_astream``), a client that hangs up
    included: closing this stream closes the recorded one."""

    async def upstream() -> AsyncIterator[dict[str, Any]]:
        if first is not None:
            yield first
            async for chunk in chunks:
                yield chunk

    try:
        # (the record already holds downstream_ms, the time to the first chunk)
        async with contextlib.aclosing(router.recorded_astream(record, upstream(), time.perf_counter())) as recorded:
            async for chunk in recorded:
                yield f"data: {json.dumps(chunk)}\n\n".encode()
        yield b"data: [DONE]\n\n"
    except ResgateError as exc:  # already recorded as the request's error
        yield b"data: " + error_response(exc).body + b"\n\n"
    finally:
        await chunks.aclose()
