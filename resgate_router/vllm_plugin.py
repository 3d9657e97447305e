"""The ``resgate`` vLLM endpoint plugin (entry-point group ``vllm.endpoint_plugins``).

Enable it on the server you already run::

    VLLM_PLUGINS=resgate RESGATE_GATE=/path/to/gate \\
        vllm serve MODEL --trust-request-mm-kwargs

It replaces POST /v1/chat/completions with a handler that gates the request's images, rewrites the
request (pre-resized images, validated ``mm_processor_kwargs``: a client's own are dropped) and hands
it to vLLM's own handler, so responses, streaming and errors stay vLLM's. Every other JSON POST has
its URLs checked against the router's address policy before vLLM (which fetches them) sees it. Settings come from
``RESGATE_*`` variables (``GateSettings``: the proxy's, without the upstream); the family is
detected from the served model's config. The gate loads while the app is built: a gate that cannot load stops
the server at start-up. Our Prometheus metrics land in prometheus_client's default registry, which
vLLM's /metrics serves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from fastapi import Request  # module level: FastAPI resolves the handler's annotations from here
from pydantic import ValidationError

if TYPE_CHECKING:
    from fastapi import FastAPI


__all__ = ["ResgateEndpointPlugin"]

logger = logging.getLogger(__name__)

CHAT_PATH = "/v1/chat/completions"
OVERRIDE_HEADER = "x-resgate-resolution"


class _URLGuard:
    """ASGI middleware: vLLM fetches media URLs itself on more paths than chat completions
    (``/v1/responses``, pooling, embeddings ...). A POST with a JSON body to any other path is checked
    with the router's address policy first: a non-public URL is a 400 before vLLM sees the request.
    The body is read once and replayed to vLLM unchanged."""

    def __init__(self, app: Any, plugin: ResgateEndpointPlugin) -> None:
        self.app, self.plugin = app, plugin

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        router = self.plugin.router
        if not self._guarded(scope) or router is None or router.url_policy is None:
            await self.app(scope, receive, send)
            return
        messages, body, more = [], b"", True
        while more:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break  # the client went away: vLLM sees that too
            body, more = body + message.get("body", b""), message.get("more_body", False)
        from .errors import ImageError
        from .server.errors import error_response

        try:
            await asyncio.to_thread(router.url_policy.check_body, body)  # it resolves host names
        except ImageError as exc:  # ForbiddenURLError is one
            await error_response(exc)(scope, receive, send)
            return
        pending = iter(messages)

        async def replay() -> Any:
            return next(pending, None) or await receive()

        await self.app(scope, replay, send)

    @staticmethod
    def _guarded(scope: Any) -> bool:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] == CHAT_PATH:
            return False
        content_type: bytes = dict(scope.get("headers", [])).get(b"content-type", b"")
        return content_type.split(b";")[0].strip().lower() == b"application/json"


def _finish(router: Any, routed: Any, response: Any, started: float) -> Any:
    """Log the request's one record as vLLM answered it: a stream when it ends, an error response as
    a failure (one naming an image URL we passed on is the client's 400, as at the proxy)."""
    from fastapi.responses import StreamingResponse

    from .errors import UpstreamStatusError
    from .messages import remote_urls
    from .server.errors import error_response, fetch_failure

    record = routed.record
    if isinstance(response, StreamingResponse):
        # logged once the stream ends, however it ends (an error event, a client that hangs up: failures)
        response.body_iterator = router.recorded_astream(record, response.body_iterator, started, _error_event)
        return response
    if response.status_code < 400:
        router.record_response(record, response, started)
        return response
    body = bytes(response.body).decode("utf-8", "replace")
    failure = fetch_failure(response.status_code, body, remote_urls(routed.request))  # only when it failed
    error = failure or UpstreamStatusError(f"vLLM answered {response.status_code}", status_code=response.status_code)
    router.record_error(record, error, started)
    return error_response(failure) if failure is not None else response


def _error_event(chunk: Any) -> BaseException | None:
    """vLLM reports an engine error inside the stream, as an SSE error event."""
    from .errors import UpstreamProtocolError

    text = chunk if isinstance(chunk, str) else bytes(chunk).decode("utf-8", "replace")
    if text.startswith('data: {"error"'):
        return UpstreamProtocolError("vLLM ended the stream with an error event")
    return None


class ResgateEndpointPlugin:
    """Zero-argument factory for vLLM; all real work happens in :meth:`attach_router`."""

    name = "resgate"
    required_tasks = ("generate",)

    def __init__(self) -> None:
        self.router: Any = None

    def _build_router(self, model: str | None) -> Any:
        from .server.routing import build_router
        from .server.settings import GateSettings

        settings = GateSettings()
        if not settings.gate and settings.fixed_class is None:
            raise RuntimeError("resgate plugin: set RESGATE_GATE to a gate directory or Hub id")
        try:
            router = build_router(settings, model=model)
        except Exception as exc:  # any failure to load must stop the server with a clear message
            raise RuntimeError(f"resgate plugin: cannot load gate {settings.gate!r}: {exc}") from exc
        logger.info("resgate plugin: gating %s with %s (family %s)", CHAT_PATH, settings.gate, router.family)
        return router

    def attach_router(self, app: FastAPI) -> None:
        from fastapi.routing import APIRoute
        from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

        from .adapters.openai_http import safe_processor_kwargs
        from .errors import InputError, ResgateError
        from .messages import remote_urls
        from .server.errors import error_response, fetch_failure

        original = next(
            r.endpoint for r in app.routes if isinstance(r, APIRoute) and r.path == CHAT_PATH and "POST" in r.methods
        )
        args = getattr(app.state, "args", None)
        self.router = router = self._build_router(getattr(args, "model", None))
        app.add_middleware(_URLGuard, plugin=self)

        def rejected(body: dict[str, Any], exc: ResgateError) -> Any:
            """The proxy's error body and status (400 for bad input, 500 for a gate error the settings
            raise), and the request's one savings-log record, as at the proxy."""
            router.record_rejected(body, exc)
            return error_response(exc)

        @app.post(CHAT_PATH)
        async def gated_chat_completion(raw_request: Request) -> Any:
            try:
                body = await raw_request.json()
            except (ValueError, RecursionError):  # RecursionError: JSON nested absurdly deep
                return rejected({}, InputError("request body is not valid JSON"))
            if not isinstance(body, dict):
                return rejected({}, InputError("request body must be a JSON object"))
            body.pop("mm_processor_kwargs", None)  # never a client's own: {"do_resize": false} kills the engine
            try:  # a refusal is recorded by the router
                routed = await router.routed(body, raw_request.headers.get(OVERRIDE_HEADER))
            except ResgateError as exc:
                return error_response(exc)
            request = dict(routed.request)
            if routed.processor_kwargs:
                request["mm_processor_kwargs"] = safe_processor_kwargs(routed.processor_kwargs)
            try:
                chat_request = ChatCompletionRequest.model_validate(request)
            except ValidationError as exc:
                error = exc.errors()[0]
                invalid = InputError(f"invalid chat request: {error['loc']}: {error['msg']}")
                router.record_error(routed.record, invalid)
                return error_response(invalid)
            started = time.perf_counter()
            try:
                response = await original(chat_request, raw_request)
            except Exception as exc:  # the engine raised: still the request's one record
                # vLLM raises when it cannot fetch an image URL we passed on: the client's 400
                failure = fetch_failure(500, str(exc), remote_urls(routed.request))
                router.record_error(routed.record, failure or exc, started)
                if failure is not None:
                    return error_response(failure)
                raise
            return _finish(router, routed, response, started)

    async def init_state(self, engine_client: Any, state: Any, args: Any) -> None:
        """Nothing to add: the router was built with the app."""
