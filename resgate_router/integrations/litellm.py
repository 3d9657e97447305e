"""The LiteLLM proxy hook: gate the images of chat requests inside the LiteLLM proxy you already run.

In LiteLLM's ``config.yaml``::

    model_list:
      - model_name: smolvlm
        litellm_params:
          model: hosted_vllm/HuggingFaceTB/SmolVLM-256M-Instruct
          api_base: http://127.0.0.1:8000/v1
    litellm_settings:
      callbacks: resgate_router.integrations.litellm.proxy_handler_instance

then ``RESGATE_GATE=builtin:docs RESGATE_FAMILY=idefics3 litellm --config config.yaml``. The settings
are the vLLM plugin's (``RESGATE_*``, :class:`~resgate_router.server.settings.GateSettings`); the
gate loads when LiteLLM loads the callback, so a gate that cannot load stops the proxy at start-up.

Each chat request goes through the same routing core as ``resgate serve`` and the vLLM plugin
(:meth:`AsyncRouter.routed`): its images are gated and resized, the processor kwargs are sent as
``extra_body.mm_processor_kwargs`` (vLLM reads them; a client's own are dropped), a per-request
override comes from the ``resgate`` body field or the ``x-resgate-resolution`` header, a failing gate
sends the request at the baseline (``RESGATE_ON_GATE_ERROR``), and bad input is LiteLLM's 400. Each
request gets one savings record (``RESGATE_LOG_PATH``, the ``resgate_*`` series in prometheus_client's
default registry, ``router.stats``) when it is answered, its stream ends or it fails. The models
gated (``RESGATE_LITELLM_MODELS``; default: all) share the one family of the settings; requests to
the proxy's other models pass untouched (their URLs still checked).
"""

from __future__ import annotations

import os
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator, Iterable
from typing import Any

from .._extras import require

require("litellm", "litellm")

from fastapi import HTTPException  # noqa: E402  (after the extra check: LiteLLM's proxy brings FastAPI)
from litellm.integrations.custom_logger import CustomLogger  # noqa: E402

from ..adapters.openai_http import safe_processor_kwargs  # noqa: E402
from ..errors import ResgateError  # noqa: E402
from ..records import SavingsRecord  # noqa: E402
from ..router import AsyncRouter  # noqa: E402
from ..router.overrides import OVERRIDE_FIELD  # noqa: E402

__all__ = ["ResgateHook", "GATED_CALL_TYPES", "OVERRIDE_HEADER"]

GATED_CALL_TYPES = frozenset({"completion", "acompletion"})  # chat completions (messages with images)
OVERRIDE_HEADER = "x-resgate-resolution"
_REQUEST_KEY = "resgate_request_id"  # in the request's LiteLLM metadata, which no provider is sent
_CLIENT_FIELDS = ("messages", "input", "prompt")  # where a client's media URLs are, whatever the endpoint
_MAX_IN_FLIGHT = 100_000  # requests routed but not yet answered; the oldest are forgotten past this


class ResgateHook(CustomLogger):
    """A LiteLLM ``CustomLogger`` that routes chat requests through ``router`` (default: built from
    the ``RESGATE_*`` environment, as the vLLM plugin's). ``models``: the LiteLLM model names to gate
    (default ``RESGATE_LITELLM_MODELS``, comma-separated; unset: every model); requests to the others
    pass untouched. ``send_processor_kwargs=False`` only resizes (for a downstream that is not vLLM)."""

    def __init__(
        self,
        router: AsyncRouter | None = None,
        *,
        models: Iterable[str] | None = None,
        send_processor_kwargs: bool = True,
    ) -> None:
        super().__init__()
        self.router = router if router is not None else router_from_environment()
        if models is None and os.environ.get("RESGATE_LITELLM_MODELS"):
            models = os.environ["RESGATE_LITELLM_MODELS"].split(",")
        self.models = frozenset(m.strip() for m in models if m.strip()) if models is not None else None
        self.send_processor_kwargs = send_processor_kwargs
        self._in_flight: OrderedDict[str, tuple[SavingsRecord, float]] = OrderedDict()

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: str
    ) -> dict[str, Any]:
        override = data.pop(OVERRIDE_FIELD, None)  # ours: never passed on to a provider
        gated = self.models is None or data.get("model") in self.models
        if not gated or call_type not in GATED_CALL_TYPES or not isinstance(data.get("messages"), list):
            await self._check_urls(data)  # other models and endpoints (responses, embeddings ...) carry URLs too
            return data
        if override is None:
            override = _headers(data).get(OVERRIDE_HEADER)
        data.pop("mm_processor_kwargs", None)  # never a client's own: {"do_resize": false} kills vLLM's engine
        extra_body = dict(data.get("extra_body") or {})
        extra_body.pop("mm_processor_kwargs", None)
        # only the chat part: the rest of LiteLLM's request (its own URLs, keys, logging objects) is not ours
        chat = {"model": data.get("model"), "messages": data["messages"]}
        try:  # a refusal is recorded by the router
            routed = await self.router.routed(chat, override)
        except ResgateError as exc:
            raise _http_error(exc) from exc
        data["messages"] = routed.request["messages"]
        if routed.processor_kwargs and self.send_processor_kwargs:
            extra_body["mm_processor_kwargs"] = safe_processor_kwargs(routed.processor_kwargs)
        if extra_body:
            data["extra_body"] = extra_body
        else:
            data.pop("extra_body", None)
        key = uuid.uuid4().hex
        metadata = data.get("metadata")
        if not isinstance(metadata, dict):
            metadata = data["metadata"] = {}
        metadata[_REQUEST_KEY] = key
        self._in_flight[key] = (routed.record, time.perf_counter())
        while len(self._in_flight) > _MAX_IN_FLIGHT:
            self._in_flight.popitem(last=False)
        return data

    async def async_post_call_success_hook(self, data: dict[str, Any], user_api_key_dict: Any, response: Any) -> Any:
        found = self._take(data)
        if found is not None:
            record, started = found
            self.router.record_response(record, response, started)
        return response

    async def async_post_call_streaming_iterator_hook(
        self, user_api_key_dict: Any, response: Any, request_data: dict[str, Any]
    ) -> AsyncGenerator[Any, None]:
        found = self._take(request_data)
        if found is None:
            async for chunk in response:
                yield chunk
            return
        record, started = found
        async for chunk in self.router.recorded_astream(record, response, started):
            yield chunk

    async def async_post_call_failure_hook(
        self,
        request_data: dict[str, Any],
        original_exception: Exception,
        user_api_key_dict: Any,
        traceback_str: str | None = None,
    ) -> None:
        found = self._take(request_data)
        if found is not None:  # routed here, then the downstream (or a later hook) failed
            record, started = found
            self.router.record_error(record, original_exception, started)

    async def _check_urls(self, data: dict[str, Any]) -> None:
        """The router's address policy on the URLs of a request it does not gate: the provider (or
        LiteLLM) may fetch them. A refused one is LiteLLM's 400; it has no savings record (not routed)."""
        import asyncio

        from ..messages import remote_urls

        policy = self.router.url_policy
        urls = remote_urls({k: data[k] for k in _CLIENT_FIELDS if k in data}) if policy is not None else []
        if policy is None or not urls:
            return

        def check_all() -> None:
            for url in urls:
                policy.check(url)

        try:
            await asyncio.to_thread(check_all)  # it resolves host names: off the event loop, one hop
        except ResgateError as exc:
            raise _http_error(exc) from exc

    def _take(self, data: Any) -> tuple[SavingsRecord, float] | None:
        metadata = data.get("metadata") if isinstance(data, dict) else None
        key = metadata.get(_REQUEST_KEY) if isinstance(metadata, dict) else None
        return self._in_flight.pop(key, None) if isinstance(key, str) else None


def _http_error(exc: ResgateError) -> HTTPException:
    """LiteLLM answers a hook's HTTPException in the OpenAI error format, with its status."""
    from ..server.errors import status_of

    return HTTPException(status_code=status_of(exc), detail=f"{type(exc).__name__}: {exc}")


def _headers(data: dict[str, Any]) -> dict[str, str]:
    request = data.get("proxy_server_request")
    headers = request.get("headers") if isinstance(request, dict) else None
    return {str(k).lower(): v for k, v in headers.items()} if isinstance(headers, dict) else {}


def router_from_environment() -> AsyncRouter:
    """The router the ``RESGATE_*`` environment describes (a gate, or a fixed class, is required)."""
    from ..errors import ConfigError
    from ..server.routing import build_router
    from ..server.settings import GateSettings

    settings = GateSettings()
    if not settings.gate and settings.fixed_class is None:
        raise ConfigError("resgate LiteLLM hook: set RESGATE_GATE to a gate (a directory, builtin:docs, legibility)")
    return build_router(settings)


def __getattr__(name: str) -> Any:
    """``proxy_handler_instance``, what LiteLLM's ``callbacks`` names: built once, when first asked for."""
    if name == "proxy_handler_instance":
        instance = globals()["proxy_handler_instance"] = ResgateHook()
        return instance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
