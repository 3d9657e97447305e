"""``BaseRouter``: the steps of routing one request that do no downstream I/O, shared by
:class:`~resgate_router.Router` and :class:`~resgate_router.AsyncRouter` (as httpx's ``BaseClient``).

A request goes through three steps: :meth:`~BaseRouter.prepare` (check URLs, find the images, read
their headers, decode the pixels a gate looks at), one batched gate call for every image still
undecided (:class:`GateRunner`), and :meth:`~BaseRouter.finish` (choose rungs, plan, resize, encode,
account). Preparing and finishing are per request and run concurrently across a batch; only the gate
call is shared. How a request's record ends (``record_response`` / ``record_error``, firing the hooks
the savings log, the metrics and the stats subscribe to) is :mod:`.recording`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from ..errors import ConfigError, ForbiddenURLError, GateError, InputError, ResgateError
from ..fetch import AddressPolicy, RemoteImageFetcher
from ..flops import model_cost
from ..gate.decision import GateDecision, default_class_names
from ..gate.pool import concurrently
from ..gate.protocol import Gate, check_gate
from ..hooks import HookName, Hooks
from ..images import DEFAULT_MAX_PIXELS
from ..ladder import FULL, Ladder, Rung
from ..messages import ImageRef, find_images, has_images, remote_urls, rewrite_images
from ..policies import FamilyPolicy, RequestPlan, get_policy
from ..prometheus import RouterMetrics, default_metrics
from ..records import ImageRecord, SavingsRecord
from ..savings_log import SavingsLog
from ..stats import RoutingStats
from .gating import GateRunner
from .overrides import OVERRIDE_FIELD, forced_class, is_off
from .recording import RecordLifecycle, elapsed_ms

__all__ = ["BaseRouter", "RoutedRequest", "RouterResponse", "Pending", "shares", "elapsed_ms"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
_PIPELINE_WORKERS = 8  # per-request preparation and finishing across a batch (PIL releases the GIL)


@dataclass
class RoutedRequest:
    """A routed request: the rewritten request, its processor kwargs, its record and the gate's
    decisions for its images."""

    request: dict[str, Any]
    processor_kwargs: dict[str, Any]
    record: SavingsRecord
    decisions: list[GateDecision] = field(default_factory=list)


@dataclass
class RouterResponse:
    response: Any
    record: SavingsRecord


@dataclass
class Pending:
    """A request between :meth:`BaseRouter.prepare` and :meth:`BaseRouter.finish`. ``forced``: the
    class each image is forced to (None: the gate decides); ``done``: set when no gate call is needed."""

    request: dict[str, Any]
    record: SavingsRecord
    refs: list[ImageRef] = field(default_factory=list)
    forced: list[int | None] = field(default_factory=list)
    done: RoutedRequest | None = None

    @property
    def to_gate(self) -> list[ImageRef]:
        if self.done is not None:
            return []
        return [ref for ref, forced in zip(self.refs, self.forced) if forced is None]


class BaseRouter(RecordLifecycle):
    """Gate, resize and account. ``family`` (or ``policy``, or ``model`` to detect it) decides how a
    rung becomes a request and what it costs; ``baseline`` is what the downstream gets without the
    router (``"full"``: the image as sent, or a px rung); ``on_gate_error="baseline"`` fails open.
    ``encode_images``: rewrite resized images as data URLs (default: unless the adapter runs in this
    process and ``takes_images``)."""

    def __init__(
        self,
        gate: Gate | None = None,
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
        fetch_remote: RemoteImageFetcher | None = None,
        url_policy: AddressPolicy | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        encode_images: bool | None = None,
    ) -> None:
        if on_gate_error not in ("baseline", "raise"):
            raise ConfigError(f"on_gate_error must be 'baseline' or 'raise', got {on_gate_error!r}")
        if mode not in ("discrete", "continuous"):
            raise ConfigError(f"mode must be 'discrete' or 'continuous', got {mode!r}")
        self.gate = check_gate(gate) if gate is not None else None
        self.adapter = adapter
        self.policy = policy or get_policy(family, model)
        self.family = self.policy.name
        self.model = str(model) if model is not None else None
        self.cost = model_cost(model, self.family)
        self.ladder = self._ladder(ladder)
        self.class_names = list(self.gate.class_names) if self.gate else default_class_names(len(self.ladder))
        self.baseline: Rung = FULL if baseline == FULL else int(baseline)
        self.on_gate_error, self.on_bad_input, self.mode = on_gate_error, on_bad_input, mode
        self.log = SavingsLog(log) if isinstance(log, (str, Path)) else log
        self.metrics = None if metrics is False else (metrics or default_metrics())
        self.stats = RoutingStats()
        self.allow_local_paths, self.jpeg_quality, self.log_questions = allow_local_paths, jpeg_quality, log_questions
        self.fetch_remote = fetch_remote  # gate http(s) images too (SSRF-checked)
        # every http(s) URL a request carries is checked, fetched or not (an upstream fetches the ones
        # passed through); a refused URL is raised, never failed open
        self.url_policy = url_policy
        self.max_pixels = max_pixels  # larger images (decompression bombs) are refused from their header
        self.encode_images = not getattr(adapter, "takes_images", False) if encode_images is None else encode_images
        self._run_gate = GateRunner(self.gate, gate_timeout) if self.gate is not None else None
        self._pipeline: ThreadPoolExecutor | None = None
        self.hooks = Hooks()
        for subscriber in (self.stats.observe, *([self.metrics.observe] if self.metrics else [])):
            self.hooks.on("response_received", lambda record, _, observe=subscriber: observe(record))
            self.hooks.on("error", lambda record, _, observe=subscriber: observe(record))
        if self.log is not None:
            self.hooks.on("response_received", lambda record, _: self.log.write(record.to_dict()))  # type: ignore[union-attr]
            self.hooks.on("error", lambda record, _: self.log.write(record.to_dict()))  # type: ignore[union-attr]

    def _ladder(self, ladder: str | Ladder | None) -> Ladder:
        if ladder is None:
            return self.gate.ladder if self.gate is not None else Ladder.parse("card")
        parsed = Ladder.parse(ladder)
        if self.gate is not None and len(parsed) != len(self.gate.ladder):
            raise ConfigError(f"ladder {parsed.spec()!r} does not match the gate's {len(self.gate.ladder)} classes")
        return parsed

    def _need_adapter(self) -> None:
        if self.adapter is None:
            raise ConfigError("this router has no adapter: pass adapter=..., or use route() for a dry run")

    def on(self, name: HookName, handler: Callable[..., Any]) -> Callable[..., Any]:
        """Subscribe ``handler`` to a lifecycle event (see :mod:`resgate_router.hooks`)."""
        return self.hooks.on(name, handler)

    # ------------------------------------------------------------------ the three steps
    def new_record(self, request: Any) -> SavingsRecord:
        if not isinstance(request, dict):  # every entry point starts here
            raise InputError(f"a chat request must be a dict, got {type(request).__name__}")
        return SavingsRecord(model=request.get("model") or self.model, family=self.family, mode=self.mode)

    def prepare(self, request: dict[str, Any], override: Any, record: SavingsRecord) -> Pending:
        """Everything before the gate: check URLs, parse images (headers only), apply overrides, and
        decode the pixels the gate will look at (in the caller's thread: one request's slow fetch or
        large page holds up nobody else)."""
        if self.url_policy is not None:
            for url in remote_urls(request):
                self.url_policy.check(url)
        request = dict(request)
        field_override = request.pop(OVERRIDE_FIELD, None)
        override = override if override is not None else field_override
        pending = Pending(request, record)
        if not has_images(request) or is_off(override):
            record.status = "passthrough" if not has_images(request) else "disabled"
            pending.done = RoutedRequest(request, {}, record)
            return pending
        try:
            refs = find_images(
                request, allow_local_paths=self.allow_local_paths, fetcher=self.fetch_remote, max_pixels=self.max_pixels
            )
        except ResgateError as exc:
            pending.done = self._fail_open(pending, exc)
            return pending
        pending.refs = [r for r in refs if r.local]
        record.remote_images = len(refs) - len(pending.refs)  # http(s) URLs: not fetched, not gated
        pending.forced = [forced_class(r, override, self.ladder, self.class_names) for r in pending.refs]
        if self.gate is not None and self.gate.needs_pixels:
            try:
                for ref in pending.to_gate:
                    ref.image  # noqa: B018  (decode here, in this request's thread, not in the gate call)
            except ResgateError as exc:
                pending.done = self._fail_open(pending, exc)
        return pending

    def decide(self, pendings: Sequence[Pending]) -> tuple[list[GateDecision], BaseException | None, float]:
        """One gate call for every image still undecided: (decisions in order, the gate's error, ms)."""
        refs = [ref for p in pendings for ref in p.to_gate]
        if not refs:
            return [], None, 0.0
        if self._run_gate is None:
            raise ConfigError("this router has no gate: pass gate=..., or force a class per request")
        started = time.perf_counter()
        try:
            return self._run_gate(refs), None, elapsed_ms(started)
        except Exception as exc:  # a gate is pluggable code; whatever it raises, each request fails open
            return [], exc, elapsed_ms(started)

    def finish_batch(self, pendings: Sequence[Pending]) -> list[RoutedRequest | Exception]:
        """One gate call for the batch's undecided images, then every request finished, concurrently.
        A request whose finishing raises gets its exception in its place; the others are routed."""
        decisions, error, gate_ms = self.decide(pendings)

        def finish(p: Pending, mine: list[GateDecision]) -> RoutedRequest | Exception:
            try:
                return self.finish(p, mine, error, gate_ms)
            except Exception as exc:  # handed to its own request
                return exc

        return self.map(finish, list(pendings), shares(pendings, decisions))

    def finish(
        self, pending: Pending, decisions: Sequence[GateDecision], gate_error: BaseException | None, gate_ms: float
    ) -> RoutedRequest:
        """The request's rungs (from ``decisions``, its share of the gate's answer), plan, rewrite and
        accounting; raises only what the settings raise (bad input, a gate error with "raise")."""
        if pending.done is None:
            pending.done = self._finish(pending, list(decisions), gate_error, gate_ms)
        self.hooks.emit("request_routed", pending.done)
        return pending.done

    def _finish(
        self, p: Pending, decisions: list[GateDecision], gate_error: BaseException | None, gate_ms: float
    ) -> RoutedRequest:
        gated = bool(p.to_gate)
        p.record.gate_ms = gate_ms if gated else 0.0
        if gated and gate_error is not None:
            return self._fail_open(p, gate_error)
        it = iter(decisions)
        mine = [next(it) if forced is None else None for forced in p.forced]
        rungs = [self._rung(r, f, d, p.record) for r, f, d in zip(p.refs, p.forced, mine)]
        if decisions:
            self.hooks.emit("gate_decision", p.record, decisions)
        try:
            return self._apply(p, rungs, decisions)
        except ResgateError as exc:  # e.g. pixels that do not decode, found when resizing
            p.record.images.clear()
            return self._fail_open(p, exc)

    def map(self, fn: Callable[..., T], *iterables: Sequence[Any]) -> list[T]:
        """``fn`` over a batch, concurrently (inline for one item)."""
        if len(iterables[0]) <= 1:
            return list(map(fn, *iterables))
        if self._pipeline is None:
            self._pipeline = ThreadPoolExecutor(_PIPELINE_WORKERS, thread_name_prefix="resgate-route")
        return concurrently(self._pipeline, fn, *iterables)

    def _apply(self, p: Pending, rungs: list[Rung], decisions: list[GateDecision]) -> RoutedRequest:
        routed = self.policy.plan([r.native for r in p.refs], rungs)
        resized = [r for r, plan in zip(p.refs, routed.images) if plan.resized]
        for ref in resized:  # decode now: a corrupt image fails here, before anything is rewritten
            ref.image  # noqa: B018
        natives = [r.native for r in p.refs]
        if resized and natives != [plan.native for plan in routed.images]:  # the pixels disagreed with the header
            routed = self.policy.plan(natives, rungs)
        baseline = self.policy.plan(natives, [self.baseline] * len(p.refs))
        sizes = [plan.send_size if plan.resized else None for plan in routed.images]
        details = [plan.detail for plan in routed.images]
        rewritten = rewrite_images(
            p.request, p.refs, sizes, details, quality=self.jpeg_quality, encode=self.encode_images
        )
        self._account(p.record, routed, baseline)
        if p.record.status is None:
            p.record.status = "routed"
        return RoutedRequest(rewritten, routed.processor_kwargs, p.record, decisions)

    def _fail_open(self, p: Pending, exc: BaseException) -> RoutedRequest:
        """The request at the baseline (or raised, as the settings ask). Images that could not be
        parsed leave the request untouched."""
        p.record.error = type(exc).__name__
        if isinstance(exc, ForbiddenURLError) or (isinstance(exc, InputError) and self.on_bad_input == "raise"):
            raise exc  # a refused URL is never sent on, whatever the settings
        if self.on_gate_error == "raise":
            if isinstance(exc, ResgateError):
                raise exc
            raise GateError(f"gate failed: {exc}") from exc
        logger.warning("gate failed (%s: %s); sending the request at the baseline", type(exc).__name__, exc)
        p.record.status = "fallback"
        p.record.images = [self._image_record(ref, None, "fallback", self.baseline) for ref in p.refs]
        try:
            return self._apply(p, [self.baseline] * len(p.refs), [])
        except ResgateError:  # the baseline itself needs pixels that do not decode: send it untouched
            p.record.images.clear()
            return RoutedRequest(p.request, {}, p.record)

    def _rung(self, ref: ImageRef, forced: int | None, decision: GateDecision | None, record: SavingsRecord) -> Rung:
        if forced is not None:
            label, source = forced, "override"
            rung = self.ladder[forced]
        else:
            assert decision is not None
            label, source = decision.label, "gate"
            rung = self.ladder[label]
            if self.mode == "continuous":
                expected = self.ladder.expected_resolution(decision.probabilities, max(ref.native))
                rung = self.policy.round_up(expected, max(ref.native))
        if self.baseline != FULL:
            rung = self.baseline if rung == FULL else min(int(rung), int(self.baseline))
        entry = self._image_record(ref, label, source, rung)
        if decision is not None:
            entry.confidence = round(decision.confidence, 4)
            entry.expected_resolution = round(
                self.ladder.expected_resolution(decision.probabilities, max(ref.native)), 1
            )
        record.images.append(entry)
        return rung

    def _image_record(self, ref: ImageRef, label: int | None, source: str, rung: Rung) -> ImageRecord:
        names = self.class_names
        return ImageRecord(
            native=list(ref.native),
            label=label,
            class_name=names[label] if label is not None and label < len(names) else None,
            source=source,
            rung=rung,
            question=ref.question if self.log_questions else None,  # off by default: no prompt text
        )

    def _account(self, record: SavingsRecord, routed: RequestPlan, baseline: RequestPlan) -> None:
        for entry, plan, base in zip(record.images, routed.images, baseline.images):
            entry.sent = list(plan.send_size)
            entry.baseline_tokens, entry.routed_tokens = base.tokens, plan.tokens
            entry.saved_tokens = base.tokens - plan.tokens
        record.baseline_tokens, record.routed_tokens = baseline.tokens, routed.tokens
        record.saved_tokens = baseline.tokens - routed.tokens
        if self.cost is not None:
            tiles = (sum(p.tiles for p in baseline.images), sum(p.tiles for p in routed.images))
            before = self.cost.prefill_flops(baseline.tokens, tiles[0])
            record.flops_saved = before - self.cost.prefill_flops(routed.tokens, tiles[1])

    def record_rejected(self, request: Any, exc: BaseException) -> None:
        """A request refused before it had a record (a bad body): still one record."""
        self.record_error(self.new_record(request if isinstance(request, dict) else {}), exc)

    def close(self) -> None:
        """Flush the savings log and stop worker threads (the adapter is the subclass's to close)."""
        if self.log is not None:
            self.log.close()
        if self._run_gate is not None:
            self._run_gate.close()
        if self._pipeline is not None:
            self._pipeline.shutdown(wait=False)


def shares(pendings: Sequence[Pending], decisions: Sequence[GateDecision]) -> list[list[GateDecision]]:
    """Each request's part of one gate call's decisions (in the order :meth:`BaseRouter.decide` asked)."""
    out, start = [], 0
    for p in pendings:
        n = len(p.to_gate)
        out.append(list(decisions[start : start + n]))
        start += n
    return out
