"""One small thread pool for the preprocessing's bands and tiles: Pillow's resampling and numpy's
lookups release the GIL, so they run in parallel on the CPU's cores."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["WORKERS", "parallel_map"]

WORKERS = min(4, os.cpu_count() or 1)
_pool: ThreadPoolExecutor | None = None

T = TypeVar("T")
R = TypeVar("R")


def parallel_map(function: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[function(item) for item in items]``, on the pool's threads."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="resgate-pixels")
    return list(_pool.map(function, items))
