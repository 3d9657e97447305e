"""Remote image URLs: fetched only when enabled, never from non-public addresses unless allowed,
with a size cap and a timeout; refused URLs are client errors at the proxy."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from resgate_router import ForbiddenURLError, ImageError, Router
from resgate_router.fetch import AddressPolicy, RemoteImageFetcher, is_public_address
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
    assert routed.record.remote_images == 1 and routed.record.images == []


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
    assert routed.record.images[0].native == [800, 600] and routed.record.remote_images == 0
    sent = routed.request["messages"][0]["content"][0]["image_url"]["url"]
    assert sent.startswith("data:image/png;base64,")  # resized, so the fetched bytes travel inline


@pytest.mark.parametrize("path,match", [("/huge.png", "over"), ("/slow.png", "cannot fetch"), ("/redirect.png", "302")])
def test_size_cap_timeout_and_redirects(image_server, path, match):
    fetcher = RemoteImageFetcher(timeout=0.5, max_bytes=len(PNG) * 10, allow_private=True)
    with pytest.raises(ImageError, match=match):
        fetcher.fetch(f"{image_server}{path}")


@pytest.fixture()
def no_network(monkeypatch):
    """For the unit tests of the address check, which name addresses outside loopback: nothing may
    connect or send anywhere, and host lookups are allowed only for IP literals (which resolve to
    themselves, with no DNS query), so a regression fails here instead of reaching out."""
    real_getaddrinfo = socket.getaddrinfo

    def refuse(*args, **kwargs):
        raise AssertionError(f"the address check tried to open a connection: {args}")

    def literal_only(host, *args, **kwargs):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            socket.inet_aton(host)  # also the legacy forms 2130706433, 0x7f.1, 017700000001; else OSError
        return real_getaddrinfo(host, *args, **kwargs)

    for name in ("connect", "connect_ex", "sendto", "sendmsg"):
        monkeypatch.setattr(socket.socket, name, refuse)
    monkeypatch.setattr(socket, "getaddrinfo", literal_only)


REFUSED = [
    "127.0.0.1",
    "127.0.0.2",
    "0.0.0.0",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "100.64.0.1",  # shared address space (carrier NAT)
    "169.254.169.254",  # AWS / GCP / Azure instance metadata (link-local)
    "100.100.100.200",  # Alibaba Cloud metadata
    "192.0.0.192",  # Oracle Cloud metadata
    "198.18.0.1",
    "224.0.0.1",  # multicast
    "240.0.0.1",  # reserved
    "::1",
    "::",
    "fe80::1",  # link-local
    "fd00:ec2::254",  # AWS metadata over IPv6 (unique local)
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:169.254.169.254",
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "ff02::1",
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", REFUSED)
def test_the_address_check_refuses_every_non_public_range(address, no_network):
    """Unit tests of the check itself: IP literals resolve to themselves, so no lookup and no
    connection happens; the check is also a client-side error type the servers answer with 400."""
    assert not is_public_address(ipaddress.ip_address(address))
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(ForbiddenURLError, match="non-public"):
        AddressPolicy().check(f"http://{host}:8080/page.png")
    AddressPolicy(allow_private=True).check(f"http://{host}:8080/page.png")  # allowed on request


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address, no_network):
    assert is_public_address(ipaddress.ip_address(address))
    AddressPolicy().check(f"https://{f'[{address}]' if ':' in address else address}/page.png")


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/x.png",  # 127.0.0.1 as one decimal number
        "http://0x7f.1/x.png",
        "http://017700000001/x.png",  # octal
        "http://user:pw@127.0.0.1/x.png",
        "http://93.184.216.34@127.0.0.1/x.png",  # the host is after the last @
        "HTTP://127.0.0.1/x.png",
    ],
)
def test_disguised_loopback_literals_are_refused(url, no_network):
    with pytest.raises(ForbiddenURLError):
        AddressPolicy().check(url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1\\@93.184.216.34/x.png", "http://93.184.216.34 /x.png", "http://[::1/x.png", "ftp://a/b"]
)
def test_urls_other_parsers_read_differently_are_refused(url, no_network):
    with pytest.raises(ImageError):
        AddressPolicy(allow_private=True).check(url)
