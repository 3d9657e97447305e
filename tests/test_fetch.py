"""Remote image URLs: fetched only when enabled, never from non-public addresses unless allowed,
with a size cap and a timeout; refused URLs are client errors at the proxy."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from resgate_router import ImageError, Router
from resgate_router.fetch import RemoteImageFetcher
from resgate_router.testing import make_document_image

from .badimages import encode

PNG = encode(make_document_image(800, 600, lines=6, seed=2))


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the timeout test hangs up on the slow path on purpose


class ImageHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/slow.png":
            time.sleep(2)
        if self.path == "/redirect.png":
            self.send_response(302)
            self.send_header("Location", "/page.png")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = PNG * (50 if self.path == "/huge.png" else 1)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def image_server():
    server = QuietServer(("127.0.0.1", 0), ImageHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def chat(url):
    return {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "Total?"}],
            }
        ]
    }


def test_remote_urls_are_not_fetched_by_default(image_server, tiny_gate):
    routed = Router(tiny_gate, family="idefics3", metrics=False).route(chat(f"{image_server}/page.png"))
    assert routed.record["remote_images"] == 1 and routed.record["images"] == []


def test_loopback_is_refused_unless_allowed(image_server, tiny_gate):
    strict = Router(
        tiny_gate, family="idefics3", metrics=False, on_bad_input="raise", fetch_remote=RemoteImageFetcher()
    )
    with pytest.raises(ImageError, match="non-public"):
        strict.route(chat(f"{image_server}/page.png"))
    for host in ("http://10.0.0.1/a.png", "http://169.254.169.254/latest/meta-data", "http://[::1]/a.png"):
        with pytest.raises(ImageError):
            RemoteImageFetcher().check(host)
    allowed = Router(tiny_gate, family="idefics3", metrics=False, fetch_remote=RemoteImageFetcher(allow_private=True))
    routed = allowed.route(chat(f"{image_server}/page.png"), override="low")
    assert routed.record["images"][0]["native"] == [800, 600] and routed.record["remote_images"] == 0
    sent = routed.request["messages"][0]["content"][0]["image_url"]["url"]
    assert sent.startswith("data:image/png;base64,")  # resized, so the fetched bytes travel inline


@pytest.mark.parametrize("path,match", [("/huge.png", "over"), ("/slow.png", "cannot fetch"), ("/redirect.png", "302")])
def test_size_cap_timeout_and_redirects(image_server, path, match):
    fetcher = RemoteImageFetcher(timeout=0.5, max_bytes=len(PNG) * 10, allow_private=True)
    with pytest.raises(ImageError, match=match):
        fetcher.fetch(f"{image_server}{path}")
