"""The ``resgate`` vLLM endpoint plugin (entry-point group ``vllm.endpoint_plugins``).

Enable it on the server you already run::

    VLLM_PLUGINS=resgate RESGATE_GATE=/path/to/gate \\
        vllm serve MODEL --trust-request-mm-kwargs

It replaces POST /v1/chat/completions with a handler that gates the request's images, rewrites the
request (pre-resized images, validated ``mm_processor_kwargs``: a client's own are dropped) and hands
it to vLLM's own handler, so responses, streaming and errors stay vLLM's. Settings come from
``RESGATE_*`` variables (``GateSettings``: the proxy's, without the upstream); the family is
detected from the served model's config. The gate loads while the app is built: a gate that cannot load stops
the server at start-up. Our Prometheus metrics land in prometheus_client's default registry, which
vLLM's /metrics serves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fastapi import Request  # module level: FastAPI resolves the handler's annotations from here
from pydantic import ValidationError

__all__ = ["ResgateEndpointPlugin"]

logger = logging.getLogger(__name__)

CHAT_PATH = "/v1/chat/completions"
OVERRIDE_HEADER = "x-resgate-resolution"


def _error(message: str, status: int = 400) -> Any:
    from fastapi.responses import JSONResponse

    body = {"error": {"message": message, "type": "BadRequestError", "param": None, "code": status}}
    return JSONResponse(body, status_code=status)


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

    def attach_router(self, app: Any) -> None:
        from fastapi.routing import APIRoute
        from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

        from .adapters.openai_http import safe_processor_kwargs
        from .errors import InputError, ResgateError
        from .server.errors import status_of

        original = next(
            r.endpoint for r in app.routes if isinstance(r, APIRoute) and r.path == CHAT_PATH and "POST" in r.methods
        )
        args = getattr(app.state, "args", None)
        self.router = router = self._build_router(getattr(args, "model", None))

        def rejected(body: dict[str, Any], exc: ResgateError) -> Any:
            """vLLM's error format with the proxy's status (400 for bad input, 500 for a gate error the
            settings raise), and the request's one savings-log record, as at the proxy."""
            router.log_rejected(body, exc)
            return _error(str(exc), status_of(exc))

        @app.post(CHAT_PATH)
        async def gated_chat_completion(raw_request: Request) -> Any:
            try:
                body = await raw_request.json()
            except (ValueError, RecursionError):  # RecursionError: JSON nested absurdly deep
                return rejected({}, InputError("request body is not valid JSON"))
            if not isinstance(body, dict):
                return rejected({}, InputError("request body must be a JSON object"))
            body.pop("mm_processor_kwargs", None)  # never a client's own: {"do_resize": false} kills the engine
            try:
                routed = await asyncio.to_thread(router.route, body, override=raw_request.headers.get(OVERRIDE_HEADER))
            except ResgateError as exc:
                return rejected(body, exc)
            request = dict(routed.request)
            if routed.processor_kwargs:
                request["mm_processor_kwargs"] = safe_processor_kwargs(routed.processor_kwargs)
            try:
                chat_request = ChatCompletionRequest.model_validate(request)
            except ValidationError as exc:
                error = exc.errors()[0]
                return rejected(body, InputError(f"invalid chat request: {error['loc']}: {error['msg']}"))
            started = time.perf_counter()
            response = await original(chat_request, raw_request)
            routed.record["downstream_ms"] = round((time.perf_counter() - started) * 1000, 3)
            router.log_record(routed.record)
            return response

    async def init_state(self, engine_client: Any, state: Any, args: Any) -> None:
        """Nothing to add: the router was built with the app."""
