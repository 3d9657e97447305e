"""The record lifecycle of a routed request, shared by every entry point: a request ends in exactly
one ``response_received`` or ``error`` hook call (the savings log, the metrics and the stats
subscribe to them), with ``downstream_ms`` set however the downstream call ended."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from ..hooks import Hooks
from ..records import SavingsRecord

__all__ = ["RecordLifecycle", "elapsed_ms"]

T = TypeVar("T")


class RecordLifecycle:
    """Mixin of :class:`~resgate_router.router.base.BaseRouter`: the ways a request's record ends."""

    hooks: Hooks

    def record_response(self, record: SavingsRecord, response: Any = None, started: float | None = None) -> None:
        """A request the downstream answered: its time (unless already set, e.g. to a stream's first
        chunk), then the ``response_received`` hooks (the savings log, metrics and stats among them)."""
        if started is not None and record.downstream_ms is None:
            record.downstream_ms = elapsed_ms(started)
        self.hooks.emit("response_received", record, response)

    def record_error(self, record: SavingsRecord, exc: BaseException, started: float | None = None) -> None:
        """A request that failed, before or after the downstream was called; the ``error`` hooks."""
        if started is not None:
            record.downstream_ms = elapsed_ms(started)
        record.status, record.error = "error", type(exc).__name__
        self.hooks.emit("error", record, exc)

    def recorded_stream(self, record: SavingsRecord, chunks: Iterable[T], started: float) -> Iterator[T]:
        """``chunks`` passed through and recorded once the stream ends: ``downstream_ms`` is the time
        to the first chunk; a stream that raises or that its reader stops early is an error."""
        last = None
        try:
            for last in chunks:
                if record.downstream_ms is None:
                    record.downstream_ms = elapsed_ms(started)
                yield last
        except BaseException as exc:  # GeneratorExit included: a reader that stopped early
            self.record_error(record, exc, started if record.downstream_ms is None else None)
            raise
        self.record_response(record, last, started)

    async def recorded_astream(
        self,
        record: SavingsRecord,
        chunks: AsyncIterable[T],
        started: float,
        failed: Callable[[T], BaseException | None] | None = None,
    ) -> AsyncGenerator[T, None]:
        """:meth:`recorded_stream` for an async stream; ``failed`` names the error a chunk reports
        in-band (an SSE error event), which makes the request an error though the stream goes on."""
        last, error = None, None
        try:
            async for last in chunks:
                if record.downstream_ms is None:
                    record.downstream_ms = elapsed_ms(started)
                if failed is not None and error is None:
                    error = failed(last)
                yield last
        except BaseException as exc:  # GeneratorExit and CancelledError included: a client that left
            self.record_error(record, exc, started if record.downstream_ms is None else None)
            raise
        if error is None:
            self.record_response(record, last, started)
        else:
            self.record_error(record, error)

    @contextmanager
    def recorded(self, *records: SavingsRecord) -> Iterator[list[Any]]:
        """Time a downstream call the caller makes itself and record each request once it returns
        (put the response in the yielded list) or raises (re-raised unchanged): one call may serve
        several requests (an engine batch)."""
        started = time.perf_counter()
        box: list[Any] = []
        try:
            yield box
        except BaseException as exc:
            for record in records:
                self.record_error(record, exc, started)
            raise
        for record in records:
            self.record_response(record, box[0] if box else None, started)


def elapsed_ms(started: float) -> float:
    """Milliseconds since ``started`` (a ``time.perf_counter()``), as every record holds them."""
    return round((time.perf_counter() - started) * 1000, 3)
