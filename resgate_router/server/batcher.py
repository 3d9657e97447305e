"""Micro-batching: concurrent requests wait up to ``max_wait_ms`` (or ``max_batch`` requests) and are
routed together, so their images reach the gate in one batched call."""

from __future__ import annotations

import asyncio
from typing import Any

from ..router import RoutedRequest, Router

__all__ = ["GateBatcher"]


class GateBatcher:
    def __init__(self, router: Router, *, max_batch: int = 16, max_wait_ms: float = 5.0) -> None:
        self.router, self.max_batch, self.max_wait = router, max_batch, max_wait_ms / 1000
        self._queue: asyncio.Queue[tuple[dict[str, Any], Any, asyncio.Future[RoutedRequest]]] | None = None
        self._task: asyncio.Task[None] | None = None

    async def route(self, request: dict[str, Any], override: Any = None) -> RoutedRequest:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.create_task(self._run())
        future: asyncio.Future[RoutedRequest] = asyncio.get_running_loop().create_future()
        await self._queue.put((request, override, future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            deadline = asyncio.get_running_loop().time() + self.max_wait
            while len(batch) < self.max_batch:
                timeout = deadline - asyncio.get_running_loop().time()
                if timeout <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), timeout))
                except asyncio.TimeoutError:
                    break
            requests, overrides, futures = zip(*batch)
            try:  # a request's own error comes back in its place; its neighbours stay batched
                results = await asyncio.to_thread(
                    self.router.route_batch, list(requests), list(overrides), return_exceptions=True
                )
            except Exception:  # anything else: route them one by one, so each gets its own outcome
                for request, override, future in batch:
                    await self._route_one(request, override, future)
                continue
            for future, result in zip(futures, results):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def _route_one(self, request: dict[str, Any], override: Any, future: asyncio.Future[RoutedRequest]) -> None:
        try:
            result = await asyncio.to_thread(self.router.route, request, override=override)
        except Exception as exc:  # handed to the request that caused it
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(result)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
