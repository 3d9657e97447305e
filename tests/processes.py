"""Interrupting real ``resgate`` processes, for the resume tests of label and bench."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from resgate_router.tools.sweep import RunStore


def kill_mid_run(args: list[str], store: Path, *, after: int, timeout: float = 120) -> int:
    """Run ``resgate ARGS`` and SIGKILL it once ``store`` holds ``after`` finished runs; return how
    many finished runs the store then holds."""
    cmd = [sys.executable, "-m", "resgate_router.cli", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if store.exists() and len(store.read_text().splitlines()) >= after:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return len(RunStore(store))
