"""Micro-batching of gate calls: the images of concurrent requests, gathered for up to
``max_wait_ms`` (or until ``max_batch`` images), go to the gate in one call. Only requests that are
prepared (fetched, decoded) join a batch, so a slow fetch delays its own request alone. A batch is
finished together (its requests concurrently, in one thread hop), so its requests leave for the
downstream together, where an engine batches them in turn."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .base import Pending, RoutedRequest

if TYPE_CHECKING:
    from .base import BaseRouter

__all__ = ["GateBatcher"]


class GateBatcher:
    def __init__(self, router: BaseRouter, *, max_batch: int = 16, max_wait_ms: float = 5.0) -> None:
        self.router, self.max_batch, self.max_wait = router, max_batch, max_wait_ms / 1000
        self._queue: asyncio.Queue[tuple[Pending, asyncio.Future[RoutedRequest]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def route(self, pending: Pending) -> RoutedRequest:
        """``pending`` gated in a shared batch call, then finished (what :meth:`BaseRouter.finish` raises
        is raised here)."""
        loop = asyncio.get_running_loop()
        if self._queue is None or self._loop is not loop:  # first use, or a new event loop
            self._queue, self._loop = asyncio.Queue(), loop
            self._task = loop.create_task(self._run(self._queue))
        future: asyncio.Future[RoutedRequest] = loop.create_future()
        await self._queue.put((pending, future))
        return await future

    async def _gather(
        self, queue: asyncio.Queue[tuple[Pending, asyncio.Future[RoutedRequest]]]
    ) -> list[tuple[Pending, asyncio.Future[RoutedRequest]]]:
        batch = [await queue.get()]
        images = len(batch[0][0].to_gate)
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while images < self.max_batch:
            try:
                if queue.empty():
                    timeout = deadline - asyncio.get_running_loop().time()
                    if timeout <= 0:
                        break
                    item = await asyncio.wait_for(queue.get(), timeout)
                else:
                    item = queue.get_nowait()
            except asyncio.TimeoutError:
                break
            batch.append(item)
            images += len(item[0].to_gate)
        return batch

    async def _run(self, queue: asyncio.Queue[tuple[Pending, asyncio.Future[RoutedRequest]]]) -> None:
        while True:
            batch = await self._gather(queue)
            try:
                results = await asyncio.to_thread(self.router.finish_batch, [pending for pending, _ in batch])
            except Exception as exc:  # no gate at all (a ConfigError): each request gets it
                results = [exc] * len(batch)
            for (_, future), result in zip(batch, results):
                if future.done():  # its client may have gone
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
