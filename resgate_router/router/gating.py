"""Calling the gate: one batched call, optionally under a time budget, its answer checked."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING

from ..errors import GateError, GateTimeoutError
from ..gate.decision import GateDecision
from ..gate.protocol import Gate
from ..messages import ImageRef

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["GateRunner"]

_WORKERS = 4  # gate calls past their budget keep a worker until they return; none wait in a queue


class GateRunner:
    """``runner(refs)``: the gate's decisions for ``refs``. A gate that answers with the wrong count or
    with classes outside its ladder raises a :class:`GateError`, as one that fails; past ``timeout``
    seconds a :class:`GateTimeoutError` (the call itself keeps its worker until it returns)."""

    def __init__(self, gate: Gate, timeout: float | None = None) -> None:
        self.gate, self.timeout = gate, timeout
        self._pool = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="resgate-gate") if timeout else None
        self._slots = threading.BoundedSemaphore(_WORKERS)

    def __call__(self, refs: Sequence[ImageRef]) -> list[GateDecision]:
        images = [r.image for r in refs] if self.gate.needs_pixels else [None] * len(refs)
        decisions = self._call(images, [r.question for r in refs])
        if len(decisions) != len(refs):
            raise GateError(f"gate returned {len(decisions)} decisions for {len(refs)} images")
        classes = len(self.gate.ladder)
        for d in decisions:
            label = getattr(d, "label", None)
            if not isinstance(label, int) or not 0 <= label < classes:
                raise GateError(f"gate returned {d!r}: not a decision on this {classes}-rung ladder")
        return decisions

    def _call(self, images: Sequence[Image.Image | None], questions: list[str]) -> list[GateDecision]:
        if self._pool is None or self.timeout is None:
            return list(self.gate.predict_batch(images, questions))
        deadline = time.monotonic() + self.timeout
        # A hung gate holds every worker: fail open within the budget, never queue images in memory.
        if not self._slots.acquire(timeout=self.timeout):
            raise GateTimeoutError(f"gate busy: {_WORKERS} calls still running past their time budget")
        future = self._pool.submit(self.gate.predict_batch, images, questions)
        future.add_done_callback(lambda _: self._slots.release())
        try:
            return list(future.result(timeout=max(0.0, deadline - time.monotonic())))
        except FutureTimeout:
            raise GateTimeoutError(f"gate exceeded its time budget of {self.timeout:.3f} s") from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
