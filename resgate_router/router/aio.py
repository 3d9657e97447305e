"""``AsyncRouter``: the async twin of :class:`~resgate_router.Router`. Per-request work runs in worker
threads; the gate calls of concurrent requests are micro-batched (``max_batch``, ``max_wait_ms``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from ..errors import ResgateError
from ..messages import has_images
from ..records import SavingsRecord
from .base import BaseRouter, Pending, RoutedRequest, RouterResponse
from .batcher import GateBatcher

__all__ = ["AsyncRouter"]


class AsyncRouter(BaseRouter):
    """Gate, resize and forward through an async adapter (``acomplete``, ``astream``). Takes the
    :class:`~resgate_router.Router` options, plus ``max_batch`` images per gate call and
    ``max_wait_ms`` a request waits for others to share it."""

    def __init__(
        self, gate: Any = None, adapter: Any = None, *, max_batch: int = 16, max_wait_ms: float = 5.0, **options: Any
    ) -> None:
        super().__init__(gate, adapter, **options)
        self.batcher = GateBatcher(self, max_batch=max_batch, max_wait_ms=max_wait_ms)

    async def route(self, request: dict[str, Any], *, override: Any = None) -> RoutedRequest:
        """Gate and rewrite ``request`` without calling the downstream (nothing is logged)."""
        return await self._route(request, override, self.new_record(request))

    async def route_batch(
        self,
        requests: Sequence[dict[str, Any]],
        overrides: Sequence[Any] | None = None,
        *,
        return_exceptions: bool = False,
    ) -> list[Any]:
        """:meth:`Router.route_batch`, awaited: the requests share one gate call."""
        overrides = list(overrides) if overrides is not None else [None] * len(requests)

        async def prepare(request: Any, override: Any) -> Pending:
            return await asyncio.to_thread(self.prepare, request, override, self.new_record(request))

        prepared = await asyncio.gather(*map(prepare, requests, overrides), return_exceptions=True)
        finished = iter(await asyncio.to_thread(self.finish_batch, [p for p in prepared if isinstance(p, Pending)]))
        results = [next(finished) if isinstance(p, Pending) else p for p in prepared]
        for result in results:
            if isinstance(result, BaseException) and (not return_exceptions or not isinstance(result, ResgateError)):
                raise result
        return results

    async def _route(self, request: dict[str, Any], override: Any, record: SavingsRecord) -> RoutedRequest:
        if not has_images(request):  # nothing to decode, resize or gate: no thread hop
            pending = self.prepare(request, override, record)
            return self.finish(pending, [], None, 0.0)
        pending = await asyncio.to_thread(self.prepare, request, override, record)
        if pending.to_gate:
            return await self.batcher.route(pending)
        return await asyncio.to_thread(self.finish, pending, [], None, 0.0)  # decided without the gate

    async def routed(self, request: dict[str, Any], override: Any = None) -> RoutedRequest:
        """:meth:`route` for a caller that forwards the request itself and records the outcome: a
        request refused here is recorded (one record per request)."""
        record = self.new_record(request)
        try:
            return await self._route(request, override, record)
        except Exception as exc:
            self.record_error(record, exc)
            raise

    async def complete(self, request: dict[str, Any], *, override: Any = None) -> RouterResponse:
        """Route ``request``, await the adapter's ``acomplete``, record it."""
        self._need_adapter()
        routed = await self.routed(request, override)
        with self.recorded(routed.record) as response:
            response.append(await self.adapter.acomplete(routed.request, processor_kwargs=routed.processor_kwargs))
        return RouterResponse(response[0], routed.record)

    async def stream(self, request: dict[str, Any], *, override: Any = None) -> AsyncIterator[Any]:
        """Route, then yield the adapter's ``astream`` chunks; recorded when the stream ends."""
        self._need_adapter()
        routed = await self.routed(request, override)
        started = time.perf_counter()
        chunks = self.adapter.astream(routed.request, processor_kwargs=routed.processor_kwargs)
        async for chunk in self.recorded_astream(routed.record, chunks, started):
            yield chunk

    def wrap(self, client: Any, *, send_processor_kwargs: bool = True) -> Any:
        """An ``openai.AsyncOpenAI`` client whose ``chat.completions.create`` is gated."""
        from ..wrap import wrap

        return wrap(self, client, send_processor_kwargs=send_processor_kwargs)

    async def aclose(self) -> None:
        """Stop the batcher and worker threads, flush the savings log, close the adapter."""
        await self.batcher.close()
        self.close()
        if self.adapter is not None and hasattr(self.adapter, "aclose"):
            await self.adapter.aclose()

    async def __aenter__(self) -> AsyncRouter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
