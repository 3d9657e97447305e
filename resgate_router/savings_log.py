"""The savings log: one JSON object per request, one line each, written by a background thread.

``write`` never blocks on disk I/O and never interleaves records (a single writer thread owns the
file); ``close`` (or leaving the ``with`` block) flushes everything queued before it.
"""

from __future__ import annotations

import json
import queue
import threading
from pathlib import Path
from typing import Any

__all__ = ["SavingsLog"]

_STOP = object()


class SavingsLog:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="resgate-savings-log", daemon=True)
        self._thread.start()

    def write(self, record: dict[str, Any]) -> None:
        """Queue one record (serialised now, so later mutation of ``record`` cannot change it)."""
        line = json.dumps(record, separators=(",", ":"), default=str)
        with self._lock:
            if self._closed:
                raise RuntimeError(f"savings log {self.path} is closed")
            self._queue.put(line)

    def _run(self) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    handle.flush()
                    return
                handle.write(item + "\n")
                if self._queue.empty():
                    handle.flush()

    def close(self) -> None:
        """Flush every queued record and stop the writer. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join()

    def __enter__(self) -> SavingsLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
