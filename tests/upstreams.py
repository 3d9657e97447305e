"""Real loopback HTTP servers that misbehave on purpose (stdlib ``http.server``, one thread each).

The scenario is the first path segment: ``http://127.0.0.1:PORT/<scenario>/v1/chat/completions``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

COMPLETION = {
    "id": "x",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        for key, value in {
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            **(headers or {}),
        }.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        scenario = self.path.strip("/").split("/")[0]
        server = self.server
        with server.lock:
            server.calls[scenario] += 1
            server.bodies.append(body)
            server.headers.append(dict(self.headers))
            server.times.append(time.monotonic())
            count = server.calls[scenario]
            server.arrived.notify_all()
        ok = json.dumps(COMPLETION).encode()
        if scenario == "ok" and not body.get("stream"):
            self._send(200, ok)
        elif scenario == "flaky500":
            self._send(500, b'{"error": "boom"}') if count == 1 else self._send(200, ok)
        elif scenario == "retry429":
            self._send(429, b'{"error": "slow down"}', {"Retry-After": "0.3"}) if count == 1 else self._send(200, ok)
        elif scenario == "always503":
            self._send(503, b'{"error": "unavailable"}')
        elif scenario == "retry503":
            self._send(503, b'{"error": "busy"}', {"Retry-After": "0.3"}) if count == 1 else self._send(200, ok)
        elif scenario == "always429":
            self._send(429, b'{"error": {"message": "rate limited"}}', {"Retry-After": "0.2"})
        elif scenario == "bad400":
            self._send(400, b'{"error": {"message": "bad request"}}')
        elif scenario == "badjson":
            self._send(200, b"this is not json")
        elif scenario == "stall":
            time.sleep(3)
            self._send(200, ok)
        elif scenario == "reset":
            self.close_connection = True
            self.connection.close()
        elif scenario in ("ok", "stream", "cutstream", "stallstream"):  # "ok" streams when asked to
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for i in range(3):
                chunk = {"id": "x", "choices": [{"index": 0, "delta": {"content": f"t{i}"}}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            if scenario == "stallstream":  # stops sending mid-stream, connection left open
                time.sleep(3)
            if scenario in ("ok", "stream"):
                self.wfile.write(b"data: [DONE]\n\n")
            self.close_connection = True
        else:
            self._send(404, b'{"error": "unknown scenario"}')


class FaultServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the listen backlog: a load test opens hundreds of connections at once

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)  # notified on every request
        self.calls: Counter = Counter()
        self.bodies: list = []
        self.headers: list = []
        self.times: list = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up on a stalled scenario are expected

    def wait_for_calls(self, scenario: str, count: int, timeout: float = 30.0) -> bool:
        """Block until ``scenario`` has had ``count`` requests (False after ``timeout`` s)."""
        with self.arrived:
            return self.arrived.wait_for(lambda: self.calls[scenario] >= count, timeout)

    def url(self, scenario: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{scenario}/v1"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def sse_events(text: str) -> list[str]:
    """The ``data:`` payloads of a server-sent-events body, in order."""
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


@contextlib.contextmanager
def running_proxy(router: Any = None, *, scenario: str = "ok", **settings: Any) -> Iterator[tuple[str, FaultServer]]:
    """The proxy (``create_app``, on uvicorn on loopback) in front of a FaultServer answering
    ``scenario`` (unless ``settings`` names another ``upstream``); yields (proxy URL, upstream)."""
    from resgate_router.server import ServerSettings, create_app
    from resgate_router.tools.servers import serve_app

    upstream = FaultServer()
    try:
        app = create_app(ServerSettings(**{"upstream": upstream.url(scenario), **settings}), router=router)
        with serve_app(app) as url:
            yield url, upstream
    finally:
        upstream.stop()


class Trap:
    """A listening TCP socket on a loopback address, where a refused image URL points: if anything
    (the proxy, vLLM) tried to fetch the URL, :meth:`connected` says so. Nothing ever answers it."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
        self.sock.bind((address, 0))
        self.sock.listen(8)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    def url(self, host: str | None = None) -> str:
        """The image URL; ``host`` (e.g. ``localhost``) names the address instead of the literal."""
        host = host or (f"[{self.address}]" if ":" in self.address else self.address)
        return f"http://{host}:{self.port}/secret.png"

    def connected(self) -> bool:
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return False
        conn.close()
        return True

    def close(self) -> None:
        self.sock.close()


#: (address the trap listens on, host name the URL uses instead of it)
LOOPBACK_TARGETS = [("127.0.0.1", None), ("127.0.0.2", None), ("::1", None), ("127.0.0.1", "localhost")]


def url_requests(url: str, model: str = "m") -> list[tuple[str, dict]]:
    """(path, body) of requests that would make an upstream fetch ``url``: an image part, the same
    with gating switched off, a video part (nothing to gate), a stream, and a passed-through endpoint."""

    def chat(part: dict, **extra: Any) -> dict:
        content = [part, {"type": "text", "text": "What is the total?"}]
        return {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 2, **extra}

    image = {"type": "image_url", "image_url": {"url": url}}
    return [
        ("chat/completions", chat(image)),
        ("chat/completions", chat(image, resgate="off")),
        ("chat/completions", chat({"type": "video_url", "video_url": {"url": url}})),
        ("chat/completions", chat(image, stream=True)),
        (
            "responses",
            {"model": model, "input": [{"role": "user", "content": [{"type": "input_image", "image_url": url}]}]},
        ),
    ]
