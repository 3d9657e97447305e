"""``Router``: route a request and send it through a sync adapter (``complete``, ``stream``)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import ResgateError
from ..records import SavingsRecord
from .base import BaseRouter, Pending, RoutedRequest, RouterResponse

__all__ = ["Router"]


class Router(BaseRouter):
    """Gate, resize and forward through a sync adapter (``complete``, ``stream``). ``route`` and
    ``route_batch`` are dry runs (nothing is sent, nothing is logged)."""

    def route(self, request: dict[str, Any], *, override: Any = None) -> RoutedRequest:
        """Gate and rewrite ``request`` without calling the downstream."""
        return self._route(request, override, self.new_record(request))

    def route_batch(
        self,
        requests: Sequence[dict[str, Any]],
        overrides: Sequence[Any] | None = None,
        *,
        return_exceptions: bool = False,
    ) -> list[Any]:
        """Dry-run many requests with one gate call for all their images; each request's preparation
        and finishing run concurrently. With ``return_exceptions``, a request that fails (bad input
        with ``on_bad_input="raise"``, a gate error with ``on_gate_error="raise"``) gets its exception
        in its place and the others are still routed; else the first failure is raised."""
        overrides = list(overrides) if overrides is not None else [None] * len(requests)

        def prepare(request: Any, override: Any) -> Pending | ResgateError:
            try:
                return self.prepare(request, override, self.new_record(request))
            except ResgateError as exc:
                return exc

        prepared = self.map(prepare, list(requests), overrides)
        finished = iter(self.finish_batch([p for p in prepared if isinstance(p, Pending)]))
        results = [next(finished) if isinstance(p, Pending) else p for p in prepared]
        for result in results:
            if isinstance(result, Exception) and (not return_exceptions or not isinstance(result, ResgateError)):
                raise result
        return results

    def _route(self, request: dict[str, Any], override: Any, record: SavingsRecord) -> RoutedRequest:
        pending = self.prepare(request, override, record)
        decisions, error, gate_ms = self.decide([pending])
        return self.finish(pending, decisions, error, gate_ms)

    def routed(self, request: dict[str, Any], override: Any = None) -> RoutedRequest:
        """:meth:`route` for a caller that forwards the request itself and records the outcome (wrap,
        GatedLLM): a request refused here is recorded (one record per request)."""
        record = self.new_record(request)
        try:
            return self._route(request, override, record)
        except Exception as exc:
            self.record_error(record, exc)
            raise

    def complete(self, request: dict[str, Any], *, override: Any = None) -> RouterResponse:
        """Route ``request``, send it through the adapter, record it."""
        self._need_adapter()
        routed = self.routed(request, override)
        with self.recorded(routed.record) as response:
            response.append(self.adapter.complete(routed.request, processor_kwargs=routed.processor_kwargs))
        return RouterResponse(response[0], routed.record)

    def stream(self, request: dict[str, Any], *, override: Any = None) -> Iterator[Any]:
        """Route, then yield the adapter's chunks; ``downstream_ms`` is the time to the first chunk and
        the request is recorded when the stream ends (a consumer that stops early: an error)."""
        self._need_adapter()
        routed = self.routed(request, override)
        started = time.perf_counter()
        chunks = self.adapter.stream(routed.request, processor_kwargs=routed.processor_kwargs)
        yield from self.recorded_stream(routed.record, chunks, started)

    def wrap(self, client: Any, *, send_processor_kwargs: bool = True) -> Any:
        """An ``openai.OpenAI``/``AsyncOpenAI`` client whose ``chat.completions.create`` is gated."""
        from ..wrap import wrap

        return wrap(self, client, send_processor_kwargs=send_processor_kwargs)

    def close(self) -> None:
        """Flush the savings log, stop worker threads and close the adapter."""
        super().close()
        if self.adapter is not None and hasattr(self.adapter, "close"):
            self.adapter.close()

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
