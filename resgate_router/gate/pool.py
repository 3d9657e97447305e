"""Threads for pixel work: Pillow's resampling, zlib and numpy's lookups release the GIL, so they
run in parallel on the CPU's cores.

Two levels, never both at once. A batch runs its items side by side (:func:`concurrently`: the
router finishing the requests of a micro-batch, a gate rendering its images); one image alone splits
its own work into bands and planes (:func:`parallel_map`). Inside an item of a batch the cores are
already taken by its siblings, so there ``parallel_map`` runs inline: splitting one image then only
adds the copies of its bands and the hand-offs between threads.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["WORKERS", "concurrently", "parallel_map", "splits"]

WORKERS = min(4, os.cpu_count() or 1)
_pool: ThreadPoolExecutor | None = None
_state = threading.local()

T = TypeVar("T")
R = TypeVar("R")


def splits() -> bool:
    """Whether splitting one image's work across threads pays here: more than one worker, and this
    thread is not one item of a batch whose items already run side by side."""
    return WORKERS > 1 and not getattr(_state, "in_batch", False)


def concurrently(executor: Executor, function: Callable[..., R], *iterables: Sequence[Any]) -> list[R]:
    """``list(executor.map(function, *iterables))``, each call marked as one item of a batch (so its
    own pixel work is not split again across threads)."""

    def item(*args: Any) -> R:
        outer, _state.in_batch = getattr(_state, "in_batch", False), True
        try:
            return function(*args)
        finally:
            _state.in_batch = outer

    return list(executor.map(item, *iterables))


def parallel_map(function: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[function(item) for item in items]``, on the pool's threads when that pays (:func:`splits`),
    else inline."""
    global _pool
    if not splits():
        return [function(item) for item in items]
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="resgate-pixels")
    return list(_pool.map(function, items))
