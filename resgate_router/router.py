"""``Router``: gate every image of an OpenAI-style chat request, apply the family policy, forward.

The non-I/O steps (find images, gate, plan, rewrite, account) are :meth:`Router.route`, a dry run;
:meth:`Router.complete` adds the adapter call, the savings log and the metrics.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .accounting import model_cost
from .errors import ConfigError, ForbiddenURLError, GateError, GateTimeoutError, InputError, ResgateError
from .gate.decision import class_names_of
from .images import DEFAULT_MAX_PIXELS
from .ladder import FULL, Ladder, Rung
from .ledger import SavingsLog
from .messages import ImageRef, find_images, has_images, remote_urls, rewrite_images
from .monitoring import RouterMetrics, RoutingStats, default_metrics
from .policies import FamilyPolicy, RequestPlan, get_policy

__all__ = ["Router", "RoutedRequest", "RouterResponse"]

logger = logging.getLogger(__name__)

OVERRIDE_FIELD = "resgate"
_GATE_WORKERS = 4  # gate calls past their budget keep a worker until they return; none wait in a queue
_OFF = {"off", "none", "disable", "disabled", "false"}


@dataclass
class RoutedRequest:
    """A dry run's result: the rewritten request, per-request processor kwargs and the record."""

    request: dict[str, Any]
    processor_kwargs: dict[str, Any]
    record: dict[str, Any]
    decisions: list[Any] = field(default_factory=list)


@dataclass
class _Pending:
    """A request between parsing and the gate's answer."""

    request: dict[str, Any]
    record: dict[str, Any]
    refs: list[ImageRef] = field(default_factory=list)
    forced: list[int | None] = field(default_factory=list)
    done: RoutedRequest | None = None


@dataclass
class RouterResponse:
    response: Any
    record: dict[str, Any]


class Router:
    """Gate, resize and forward. ``family`` (or ``policy``, or ``model`` to detect it) decides how a
    rung becomes a request and what it costs; ``baseline`` is what the downstream gets without the
    router (``"full"``: the image as sent, or a px rung); ``on_gate_error="baseline"`` fails open."""

    def __init__(
        self,
        gate: Any = None,
        adapter: Any = None,
        *,
        family: str | None = None,
        model: str | Path | None = None,
        policy: FamilyPolicy | None = None,
        ladder: str | Ladder | None = None,
        baseline: Rung = FULL,
        on_gate_error: Literal["baseline", "raise"] = "baseline",
        on_bad_input: Literal["baseline", "raise"] = "baseline",
        gate_timeout: float | None = None,
        mode: Literal["discrete", "continuous"] = "discrete",
        log: str | Path | SavingsLog | None = None,
        metrics: RouterMetrics | None | Literal[False] = None,
        allow_local_paths: bool = True,
        jpeg_quality: int = 95,
        log_questions: bool = False,
        fetch_remote: Any = None,
        url_policy: Any = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        if on_gate_error not in ("baseline", "raise"):
            raise ConfigError(f"on_gate_error must be 'baseline' or 'raise', got {on_gate_error!r}")
        if mode not in ("discrete", "continuous"):
            raise ConfigError(f"mode must be 'discrete' or 'continuous', got {mode!r}")
        self.gate, self.adapter = gate, adapter
        self.policy = policy or get_policy(family, model)
        self.family = self.policy.name
        self.model = str(model) if model is not None else None
        self.cost = model_cost(model, self.family)
        self.ladder = Ladder.parse(ladder) if ladder is not None else getattr(gate, "ladder", Ladder.parse("card"))
        self.class_names = class_names_of(gate, len(self.ladder))
        if gate is not None and len(self.ladder) != len(getattr(gate, "ladder", self.ladder)):
            raise ConfigError(f"ladder {self.ladder.spec()!r} does not match the gate's {len(gate.ladder)} classes")
        self.baseline = None if baseline == FULL else int(baseline)
        self.on_gate_error, self.gate_timeout, self.mode = on_gate_error, gate_timeout, mode
        self.on_bad_input = on_bad_input  # "raise" at a server: an undecodable image is the client's 400
        self.log = SavingsLog(log) if isinstance(log, (str, Path)) else log
        self.metrics = None if metrics is False else (metrics or default_metrics())
        self.stats = RoutingStats()
        self.allow_local_paths, self.jpeg_quality = allow_local_paths, jpeg_quality
        self.log_questions = log_questions
        self.fetch_remote = fetch_remote  # a RemoteImageFetcher: gate http(s) images too (SSRF-checked)
        # an AddressPolicy: every http(s) URL a request carries is checked, fetched or not (an upstream
        # fetches the ones passed through); a refused URL is raised, never failed open
        self.url_policy = url_policy
        self.max_pixels = max_pixels  # larger images (decompression bombs) are refused from their header
        self._gate_pool = (
            ThreadPoolExecutor(max_workers=_GATE_WORKERS, thread_name_prefix="resgate-gate") if gate_timeout else None
        )
        self._gate_slots = threading.BoundedSemaphore(_GATE_WORKERS)

    # ------------------------------------------------------------------ dry run
    def route(self, request: dict[str, Any], *, override: Any = None) -> RoutedRequest:
        """Gate and rewrite ``request`` without calling the downstream (nothing is logged)."""
        return self._route(request, override, self._new_record(request))

    def route_batch(
        self, requests: list[dict[str, Any]], overrides: list[Any] | None = None, *, return_exceptions: bool = False
    ) -> list[Any]:
        """Dry-run many requests with one gate call for all their images (for engines and proxies).
        With ``return_exceptions``, a request that fails (bad input with ``on_bad_input="raise"``, a
        gate error with ``on_gate_error="raise"``) gets its exception in its place, and the others
        are still routed together; else the first failure is raised."""
        overrides = overrides or [None] * len(requests)
        prepared: list[Any] = []
        for request, override in zip(requests, overrides):
            try:
                prepared.append(self._prepare(request, override, self._new_record(request)))
            except ResgateError as exc:
                if not return_exceptions:
                    raise
                prepared.append(exc)
        decided = iter(self._decide([p for p in prepared if isinstance(p, _Pending)], return_exceptions))
        return [p if isinstance(p, Exception) else next(decided) for p in prepared]

    def _route(self, request: dict[str, Any], override: Any, record: dict[str, Any]) -> RoutedRequest:
        return self._decide([self._prepare(request, override, record)])[0]

    def _prepare(self, request: dict[str, Any], override: Any, record: dict[str, Any]) -> _Pending:
        """Everything before the gate: parse images, apply per-request overrides."""
        if self.url_policy is not None:
            for url in remote_urls(request):
                self.url_policy.check(url)
        request = dict(request)
        field_override = request.pop(OVERRIDE_FIELD, None)
        override = override if override is not None else field_override
        pending = _Pending(request, record)
        if not has_images(request):
            record["status"] = "passthrough"
            pending.done = RoutedRequest(request, {}, record)
        elif _is_off(override):
            record["status"] = "disabled"
            pending.done = RoutedRequest(request, {}, record)
        else:
            try:
                refs = find_images(
                    request,
                    allow_local_paths=self.allow_local_paths,
                    fetcher=self.fetch_remote,
                    max_pixels=self.max_pixels,
                )
            except ResgateError as exc:
                pending.done = self._fail_open(request, record, exc)
                return pending
            pending.refs = [r for r in refs if r.local]
            record["remote_images"] = len(refs) - len(pending.refs)  # http(s) URLs: not fetched, not gated
            pending.forced = [self._forced_class(r, override) for r in pending.refs]
        return pending

    def _decide(self, pending: list[_Pending], return_exceptions: bool = False) -> list[Any]:
        """One gate call for every image still undecided, then each request's plan and rewrite (a
        request whose fail-open raises gets that exception in its place with ``return_exceptions``)."""

        def fail_open(p: _Pending, exc: BaseException) -> None:
            try:
                p.done = self._fail_open(p.request, p.record, exc, p.refs)  # images already parsed
            except ResgateError as raised:
                if not return_exceptions:
                    raise
                p.done = raised

        started = time.perf_counter()
        gated = [p for p in pending if p.done is None and None in p.forced]
        to_gate = [ref for p in gated for ref, forced in zip(p.refs, p.forced) if forced is None]
        decisions: list[Any] = []
        if to_gate:
            if self.gate is None:
                raise ConfigError("this router has no gate: pass gate=..., or force a class per request")
            try:
                decisions = self._run_gate(to_gate)
            except Exception as exc:  # a gate is pluggable code; whatever it raises, fail open unless asked not to
                for p in gated:
                    p.record["gate_ms"] = elapsed_ms(started)
                    fail_open(p, exc)
        gate_ms = elapsed_ms(started) if to_gate else 0.0
        gated_ids = {id(p) for p in gated}
        it = iter(decisions)
        for p in pending:
            if p.done is not None:
                continue
            p.record["gate_ms"] = gate_ms if id(p) in gated_ids else 0.0
            mine = [next(it) if forced is None else None for forced in p.forced]
            rungs = [self._resolution(r, f, d, p.record) for r, f, d in zip(p.refs, p.forced, mine)]
            try:
                p.done = self._apply(p.request, p.refs, rungs, p.record, [d for d in mine if d is not None])
            except ResgateError as exc:  # e.g. pixels that do not decode, found when resizing
                p.record["images"].clear()
                fail_open(p, exc)
        return [p.done for p in pending if p.done is not None]

    def _apply(
        self,
        request: dict[str, Any],
        refs: list[ImageRef],
        rungs: list[int | None],
        record: dict[str, Any],
        decisions: list[Any],
    ) -> RoutedRequest:
        routed = self.policy.plan([r.native for r in refs], rungs)
        resized = [r for r, p in zip(refs, routed.images) if p.resized]
        for ref in resized:  # decode now: a corrupt image fails here, before anything is rewritten
            ref.image  # noqa: B018
        natives = [r.native for r in refs]
        if resized and natives != [p.native for p in routed.images]:  # the pixels disagreed with the header
            routed = self.policy.plan(natives, rungs)
        baseline = self.policy.plan(natives, [self.baseline] * len(refs))
        sizes = [p.send_size if p.resized else None for p in routed.images]
        details = [p.detail for p in routed.images]
        rewritten = rewrite_images(request, refs, sizes, details, quality=self.jpeg_quality)
        self._account(record, routed, baseline)
        record.setdefault("status", "routed")
        return RoutedRequest(rewritten, routed.processor_kwargs, record, decisions)

    def _fail_open(
        self, request: dict[str, Any], record: dict[str, Any], exc: BaseException, refs: list[ImageRef] | None = None
    ) -> RoutedRequest:
        """The request at the baseline (or raised, as the settings ask); ``refs``: its local images,
        when already parsed."""
        record["error"] = type(exc).__name__
        if isinstance(exc, ForbiddenURLError) or (isinstance(exc, InputError) and self.on_bad_input == "raise"):
            raise exc  # a refused URL is never sent on, whatever the settings
        if self.on_gate_error == "raise":
            if isinstance(exc, ResgateError):
                raise exc
            raise GateError(f"gate failed: {exc}") from exc
        logger.warning("gate failed (%s: %s); sending the request at the baseline", type(exc).__name__, exc)
        record["status"] = "fallback"
        if refs is None:
            try:
                refs = [
                    r
                    for r in find_images(
                        request,
                        allow_local_paths=self.allow_local_paths,
                        fetcher=self.fetch_remote,
                        max_pixels=self.max_pixels,
                    )
                    if r.local
                ]
            except ResgateError:  # undecodable image: the downstream gets the request untouched
                return RoutedRequest(request, {}, record)
        for ref in refs:
            record["images"].append(self._image_entry(ref, None, "fallback", self.baseline))
        try:
            return self._apply(request, refs, [self.baseline] * len(refs), record, [])
        except ResgateError:  # the baseline itself needs pixels that do not decode: send it untouched
            record["images"].clear()
            return RoutedRequest(request, {}, record)

    # ------------------------------------------------------------------ decisions
    def _run_gate(self, refs: list[ImageRef]) -> list[Any]:
        """The gate's decisions, checked: a gate that answers with the wrong count or classes outside
        the ladder fails open like one that raises."""
        decisions = self._call_gate([r.image for r in refs], [r.question for r in refs])
        if len(decisions) != len(refs):
            raise GateError(f"gate returned {len(decisions)} decisions for {len(refs)} images")
        for d in decisions:
            label = getattr(d, "label", None)
            if not isinstance(label, int) or not 0 <= label < len(self.ladder):
                raise GateError(f"gate returned {d!r}: not a decision on this {len(self.ladder)}-rung ladder")
        return decisions

    def _call_gate(self, images: list[Any], questions: list[str]) -> list[Any]:
        if self._gate_pool is None:
            return list(self.gate.predict_batch(images, questions))
        deadline = time.monotonic() + self.gate_timeout
        # A hung gate holds every worker: fail open within the budget, never queue images in memory.
        if not self._gate_slots.acquire(timeout=self.gate_timeout):
            raise GateTimeoutError(f"gate busy: {_GATE_WORKERS} calls still running past their time budget")
        future = self._gate_pool.submit(self.gate.predict_batch, images, questions)
        future.add_done_callback(lambda _: self._gate_slots.release())
        try:
            return list(future.result(timeout=max(0.0, deadline - time.monotonic())))
        except FutureTimeout:
            raise GateTimeoutError(f"gate exceeded its time budget of {self.gate_timeout:.3f} s") from None

    def _forced_class(self, ref: ImageRef, override: Any) -> int | None:
        """A class forced by the request: ``resgate``/header value, else the part's ``detail``."""
        if override is not None and str(override).lower() != "auto":
            return self._class_of(override)
        if ref.detail == "low":
            return 0
        if ref.detail == "high":
            return len(self.ladder) - 1
        return None

    def _class_of(self, value: Any) -> int:
        names = self.class_names
        if isinstance(value, dict):
            value = value.get("resolution", value.get("class"))
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(self.ladder):
            return value
        text = str(value).strip().lower()
        if text in names:
            return names.index(text)
        rungs = [str(r) for r in self.ladder.rungs]
        if text in rungs:
            return rungs.index(text)
        raise InputError(
            f"invalid resgate override {value!r}: use 'auto', 'off', a class name {names}, "
            f"a class index or a rung {rungs}"
        )

    def _resolution(self, ref: ImageRef, forced: int | None, decision: Any, record: dict[str, Any]) -> int | None:
        if forced is not None:
            rung, source, label = self.ladder[forced], "override", forced
        else:
            label, source = decision.label, "gate"
            rung = self.ladder[label]
            if self.mode == "continuous":
                px = self.policy.round_up(decision.expected_resolution, max(ref.native))
                rung = FULL if px is None else px
        resolution = None if rung == FULL else int(rung)
        if self.baseline is not None:
            resolution = self.baseline if resolution is None else min(resolution, self.baseline)
        entry = self._image_entry(ref, label, source, resolution)
        if decision is not None:
            entry["confidence"] = round(decision.confidence, 4)
            entry["expected_resolution"] = round(decision.expected_resolution, 1)
        record["images"].append(entry)
        return resolution

    def _image_entry(self, ref: ImageRef, label: int | None, source: str, resolution: int | None) -> dict[str, Any]:
        names = self.class_names
        entry = {
            "native": list(ref.native),
            "class": label,
            "class_name": names[label] if label is not None and label < len(names) else None,
            "source": source,
            "target": resolution if resolution is not None else FULL,
        }
        if self.log_questions:  # off by default: records carry no prompt text
            entry["question"] = ref.question
        return entry

    # ------------------------------------------------------------------ accounting
    def _account(self, record: dict[str, Any], routed: RequestPlan, baseline: RequestPlan) -> None:
        for entry, plan, base in zip(record["images"], routed.images, baseline.images):
            entry.update(
                sent=list(plan.send_size),
                baseline_tokens=base.tokens,
                routed_tokens=plan.tokens,
                saved_tokens=base.tokens - plan.tokens,
            )
        record.update(
            baseline_tokens=baseline.tokens, routed_tokens=routed.tokens, saved_tokens=baseline.tokens - routed.tokens
        )
        if self.cost is not None:
            tiles = (sum(p.tiles for p in baseline.images), sum(p.tiles for p in routed.images))
            before = self.cost.prefill_flops(baseline.tokens, tiles[0])
            after = self.cost.prefill_flops(routed.tokens, tiles[1])
            record["flops_saved"] = before - after

    def _new_record(self, request: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(request, dict):  # every entry point starts here
            raise InputError(f"a chat request must be a dict, got {type(request).__name__}")
        return {
            "id": f"rg-{uuid.uuid4().hex[:16]}",
            "time": time.time(),
            "model": request.get("model") or self.model,
            "family": self.family,
            "mode": self.mode,
            "images": [],
            "baseline_tokens": 0,
            "routed_tokens": 0,
            "saved_tokens": 0,
            "gate_ms": None,
            "downstream_ms": None,
            "error": None,
        }

    def log_record(self, record: dict[str, Any]) -> None:
        """Count and log a finished request (stats, metrics, savings log): for callers that forward
        a routed request themselves (proxy, plugin, wrap, GatedLLM)."""
        self.stats.observe(record)
        if self.metrics is not None:
            self.metrics.observe(record)
        if self.log is not None:
            self.log.write(record)

    # ------------------------------------------------------------------ forwarding
    def complete(self, request: dict[str, Any], *, override: Any = None) -> RouterResponse:
        """Route ``request``, send it through the adapter, log and count it."""
        if self.adapter is None:
            raise ConfigError("this router has no adapter: pass adapter=..., or use route() for a dry run")
        record = self._new_record(request)
        started = None
        try:
            routed = self._route(request, override, record)
            started = time.perf_counter()
            response = self.adapter.complete(routed.request, processor_kwargs=routed.processor_kwargs)
        except Exception as exc:  # recorded, then re-raised unchanged: the error is the caller's
            self.log_failure(record, exc, started)
            raise
        routed.record["downstream_ms"] = elapsed_ms(started)
        self.log_record(routed.record)
        return RouterResponse(response, routed.record)

    def stream(self, request: dict[str, Any], *, override: Any = None) -> Iterator[Any]:
        """Route, then yield the adapter's stream chunk by chunk; the record is logged at the end."""
        record = self._new_record(request)
        started = None
        try:
            routed = self._route(request, override, record)
            started = time.perf_counter()
            for chunk in self.adapter.stream(routed.request, processor_kwargs=routed.processor_kwargs):
                if record["downstream_ms"] is None:
                    record["downstream_ms"] = elapsed_ms(started)  # time to first chunk
                yield chunk
        except Exception as exc:  # recorded, then re-raised unchanged
            self.log_failure(record, exc, started)
            raise
        self.log_record(record)

    async def acomplete(self, request: dict[str, Any], *, override: Any = None) -> RouterResponse:
        """The async path: the gate runs in a worker thread, the adapter's ``acomplete`` is awaited."""
        record = self._new_record(request)
        started = None
        try:
            routed = await asyncio.to_thread(self._route, request, override, record)
            started = time.perf_counter()
            response = await self.adapter.acomplete(routed.request, processor_kwargs=routed.processor_kwargs)
        except Exception as exc:  # recorded, then re-raised unchanged
            self.log_failure(record, exc, started)
            raise
        record["downstream_ms"] = elapsed_ms(started)
        self.log_record(record)
        return RouterResponse(response, record)

    def wrap(self, client: Any, *, send_processor_kwargs: bool = True) -> Any:
        """An ``openai.OpenAI``/``AsyncOpenAI`` client whose ``chat.completions.create`` is gated."""
        from .wrap import wrap

        return wrap(self, client, send_processor_kwargs=send_processor_kwargs)

    def log_failure(self, record: dict[str, Any], exc: BaseException, started: float | None) -> None:
        """Mark a request failed (error class; downstream time so far when ``started`` is given, else
        the time already recorded, e.g. to a stream's first chunk) and log it."""
        if started is not None:
            record["downstream_ms"] = elapsed_ms(started)
        record.update(status="error", error=type(exc).__name__)
        self.log_record(record)

    @contextmanager
    def recorded(self, *records: dict[str, Any]) -> Iterator[None]:
        """Time a downstream call the caller makes itself (wrap, GatedLLM) and log each record once it
        returns, or raises (then re-raised unchanged): one call may serve several requests."""
        started = time.perf_counter()
        try:
            yield
        except Exception as exc:
            for record in records:
                self.log_failure(record, exc, started)
            raise
        for record in records:
            record["downstream_ms"] = elapsed_ms(started)
            self.log_record(record)

    def log_outcome(self, record: dict[str, Any], error: BaseException | None, started: float | None = None) -> None:
        """Log a finished request as a success (``error`` None) or a failure: for streams, at their end."""
        if error is None:
            self.log_record(record)
        else:
            self.log_failure(record, error, started)

    def log_rejected(self, request: dict[str, Any], exc: BaseException) -> None:
        """Log a request refused before it was routed (a proxy's bad body, a gate error raised)."""
        self.log_failure(self._new_record(request), exc, None)

    def close(self) -> None:
        """Flush the savings log, stop worker threads and close the adapter."""
        if self.log is not None:
            self.log.close()
        if self._gate_pool is not None:
            self._gate_pool.shutdown(wait=False, cancel_futures=True)
        if self.adapter is not None and hasattr(self.adapter, "close"):
            self.adapter.close()

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_off(value: Any) -> bool:
    if value is False:
        return True
    if isinstance(value, dict):
        return value.get("enabled") is False or _is_off(value.get("resolution"))
    return isinstance(value, str) and value.strip().lower() in _OFF


def elapsed_ms(started: float) -> float:
    """Milliseconds since ``started`` (a ``time.perf_counter()``), as every record holds them."""
    return round((time.perf_counter() - started) * 1000, 3)
