"""Run a downstream on every sample at every resolution, once: the work behind ``resgate label`` and
``resgate bench``.

Each finished (sample, resolution, model) run is appended to a JSONL :class:`RunStore` as soon as it
ends, so an interrupted sweep loses nothing it finished and a rerun (or a benchmark with one more
gate) only runs what is missing. Requests are built and resized by the :class:`~resgate_router.Router`
with the class forced, exactly as in serving. HTTP adapters run ``concurrency`` requests at a time,
spread round-robin over several upstreams (e.g. vLLM replicas); in-process engines (``hf``, ``vllm``:
adapters with ``complete_batch``) get ``batch_size`` requests per engine call, grouped by resolution.
A batched run records the batch's wall time (``batch_ms``, ``batch_size``), not a per-request latency.
:meth:`Sweep.execute` is the work itself; ``--engine ray`` runs it on a pool of Ray actors
(:class:`~resgate_router.tools.ray_engine.RaySweep`) with the same store and outputs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from ..adapters.models import ChatResponse
from ..errors import ConfigError
from ..ladder import FULL, Ladder, Rung
from ..policies import FamilyPolicy
from ..router import Router
from .datasets import Sample

__all__ = ["RunStore", "Sweep", "rung_key"]

logger = logging.getLogger(__name__)


def rung_key(rung: Rung) -> str:
    """How a resolution is written in stores and reports: ``"384"`` or ``"full"``."""
    return FULL if rung == FULL else str(int(rung))


class RunStore:
    """Append-only JSONL of finished runs keyed by (sample id, resolution, model). A torn last line
    (a killed process) is skipped on load; failed runs are not stored, so a rerun retries them."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._runs: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.skipped_lines = 0
        if self.path.exists():
            self._load()
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _load(self) -> None:
        with self.path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    run = json.loads(line)
                    self._runs[(run["id"], run["resolution"], run["model"])] = run
                except (ValueError, KeyError, TypeError):
                    self.skipped_lines += 1
                    logger.warning("%s:%d: unreadable run record skipped (an interrupted write?)", self.path, number)

    def get(self, sample_id: str, resolution: str, model: str) -> dict[str, Any] | None:
        return self._runs.get((sample_id, resolution, model))

    def add(self, run: dict[str, Any]) -> None:
        line = json.dumps(run, ensure_ascii=False) + "\n"
        with self._lock:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
            self._runs[(run["id"], run["resolution"], run["model"])] = run

    def __len__(self) -> int:
        return len(self._runs)


class Sweep:
    """``adapters``: one per upstream (round-robin); ``model``: the name runs are cached under (change
    it when the downstream changes); ``policy``: how a resolution becomes a request (and its cost);
    ``store``: None for a worker that only executes pairs (a Ray actor)."""

    def __init__(
        self,
        adapters: Sequence[Any],
        store: RunStore | None,
        *,
        model: str,
        policy: FamilyPolicy,
        concurrency: int = 1,
        max_tokens: int = 64,
        served_model: str | None = None,
        stream: bool = False,
        batch_size: int = 1,
        progress: bool = True,
    ) -> None:
        if not adapters:
            raise ConfigError("a sweep needs at least one adapter")
        if concurrency < 1 or batch_size < 1:
            raise ConfigError(f"concurrency and batch size must be >= 1, got {concurrency} and {batch_size}")
        self.adapters, self.store, self.model, self.policy = list(adapters), store, model, policy
        self.concurrency, self.max_tokens, self.served_model = concurrency, max_tokens, served_model
        self.batch_size = batch_size
        self.stream, self.progress = stream, progress
        self.calls = 0  # downstream calls made by this sweep (cache hits make none)
        self.failures: list[dict[str, Any]] = []
        self._next = 0
        self._lock = threading.Lock()

    def run(self, samples: Iterable[Sample], resolutions: Sequence[Rung], *, desc: str = "downstream") -> None:
        """Run every (sample, resolution) pair not yet in the store; each run is stored as it ends."""
        if self.store is None:
            raise ConfigError("this sweep has no run store: use execute()")
        store, ladder = self.store, Ladder(tuple(_ordered(resolutions)))
        todo = [
            (sample, k)
            for sample in samples
            for k, rung in enumerate(ladder.rungs)
            if store.get(sample.id, rung_key(rung), self.model) is None
        ]
        bar = _progress(len(todo), desc, self.progress)
        try:
            for run in self.execute(ladder, todo):
                if "error" in run:
                    self.failures.append(run)
                else:
                    store.add(run)
                bar.update(1)
        finally:
            bar.close()
        if self.failures:
            logger.warning(
                "%d downstream runs failed (rerun to retry them); first: %s", len(self.failures), self.failures[0]
            )

    def stored(self, sample_id: str, rung: Rung | str) -> dict[str, Any] | None:
        """The stored run of ``sample_id`` at ``rung`` by this sweep's downstream (None: not run yet)."""
        if self.store is None:
            raise ConfigError("this sweep has no run store")
        return self.store.get(sample_id, rung if isinstance(rung, str) else rung_key(rung), self.model)

    def execute(self, ladder: Ladder, todo: Sequence[tuple[Sample, int]]) -> Iterator[dict[str, Any]]:
        """Run (sample, rung index) pairs here; yield each run as it ends (a failed one with ``error``)."""
        router = Router(policy=self.policy, ladder=ladder, metrics=False, on_bad_input="raise", on_gate_error="raise")
        batched = self.batch_size > 1 and not self.stream and all(hasattr(a, "complete_batch") for a in self.adapters)
        if batched:
            ordered = sorted(todo, key=lambda item: item[1])  # one resolution per batch: one engine call each
            for start in range(0, len(ordered), self.batch_size):
                yield from self._batch(router, ordered[start : start + self.batch_size])
        elif self.concurrency == 1:
            for sample, k in todo:
                yield self._one(router, sample, k)
        else:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="resgate-sweep") as pool:
                futures = [pool.submit(self._one, router, sample, k) for sample, k in todo]
                for future in as_completed(futures):
                    yield future.result()

    def _adapter(self) -> Any:
        with self._lock:
            adapter = self.adapters[self._next % len(self.adapters)]
            self._next += 1
            self.calls += 1
        return adapter

    @staticmethod
    def _fail(run: dict[str, Any], exc: BaseException) -> dict[str, Any]:
        run["error"] = f"{type(exc).__name__}: {exc}"
        return run

    def _routed(self, router: Router, sample: Sample, k: int, run: dict[str, Any]) -> Any:
        """The request for ``sample`` at rung ``k``, resized by the router; its cost goes into ``run``."""
        image = str(sample.image) if isinstance(sample.image, Path) else sample.image
        request: dict[str, Any] = {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image", "image": image}, {"type": "text", "text": sample.question}],
                }
            ],
            "max_tokens": self.max_tokens,
            "temperature": 0.0,
        }
        if self.served_model:
            request["model"] = self.served_model
        routed = router.route(request, override=k)
        image = routed.record.images[0]
        run.update(visual_tokens=routed.record.routed_tokens, sent=image.sent, native=image.native)
        return routed

    def _new_run(self, sample: Sample, rung: Rung) -> dict[str, Any]:
        return {"id": sample.id, "resolution": rung_key(rung), "model": self.model}

    def _batch(self, router: Router, chunk: Sequence[tuple[Sample, int]]) -> list[dict[str, Any]]:
        """One engine call for a chunk of (sample, rung) pairs."""
        runs, routed, failed = [], [], []
        for sample, k in chunk:
            run = self._new_run(sample, router.ladder[k])
            try:
                routed.append(self._routed(router, sample, k, run))
                runs.append(run)
            except Exception as exc:  # this pair's image: reported, the rest of the chunk still runs
                failed.append(self._fail(run, exc))
        if not runs:
            return failed
        started = time.perf_counter()
        try:
            responses = self._adapter().complete_batch(
                [r.request for r in routed], [r.processor_kwargs for r in routed]
            )
        except Exception as exc:  # the engine call failed: every run of it is retried on rerun
            return failed + [self._fail(run, exc) for run in runs]
        batch_ms = round((time.perf_counter() - started) * 1000, 2)
        for run, response in zip(runs, responses):
            run.update(answer=ChatResponse.model_validate(response).text, batch_ms=batch_ms, batch_size=len(runs))
            if getattr(response, "usage", None) is not None:
                run["prompt_tokens"] = response.usage.prompt_tokens
        return failed + runs

    def _one(self, router: Router, sample: Sample, k: int) -> dict[str, Any]:
        run = self._new_run(sample, router.ladder[k])
        try:
            routed = self._routed(router, sample, k, run)
            adapter = self._adapter()
            started = time.perf_counter()
            if self.stream:
                text, ttft = _streamed(adapter, routed, started)
                run["ttft_ms"] = ttft
            else:
                response = adapter.complete(routed.request, processor_kwargs=routed.processor_kwargs)
                text = ChatResponse.model_validate(response).text
                if getattr(response, "cached", False):  # a memoizing downstream answered from its memo
                    run["cached"] = True
                usage = getattr(response, "usage", None)
                if usage is not None:
                    run["prompt_tokens"] = usage.prompt_tokens
            run["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
            run["answer"] = text
        except Exception as exc:  # one failed run must not end a sweep of thousands: reported, retried on rerun
            return self._fail(run, exc)
        return run


def _streamed(adapter: Any, routed: Any, started: float) -> tuple[str, float | None]:
    parts, ttft = [], None
    for chunk in adapter.stream(routed.request, processor_kwargs=routed.processor_kwargs):
        data = chunk.model_dump() if hasattr(chunk, "model_dump") else chunk
        for choice in data.get("choices") or []:
            piece = (choice.get("delta") or {}).get("content")
            if piece:
                if ttft is None:
                    ttft = round((time.perf_counter() - started) * 1000, 2)
                parts.append(piece)
    return "".join(parts), ttft


def _ordered(resolutions: Sequence[Rung]) -> list[Rung]:
    numeric = sorted({int(r) for r in resolutions if r != FULL})
    return numeric + ([FULL] if FULL in resolutions else [])


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="run", disable=not enabled or total == 0, dynamic_ncols=True)
