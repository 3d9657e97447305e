"""Remote ``http(s)`` URLs in requests, safely (server-side request forgery).

:class:`AddressPolicy` refuses a URL whose host is, or resolves to, a loopback, private, link-local
(cloud metadata included), shared, reserved or multicast address, unless private networks are
allowed. A server applies it to every URL it forwards, not only to the ones it fetches: an upstream
(vLLM, for one) fetches image URLs itself, so a URL passed through untouched reaches the same
addresses. :class:`RemoteImageFetcher` fetches an image for the gate under the same policy, with a
timeout, a size cap and no redirects. The check resolves the host first; a DNS answer that changes
between the check and the connection (rebinding) is not covered, nor is an upstream whose resolver
answers differently from ours.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from urllib.parse import urlsplit

import httpx2

from .errors import ForbiddenURLError, ImageError

__all__ = ["AddressPolicy", "RemoteImageFetcher", "is_public_address"]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # a NAT64 gateway turns these into the IPv4 address inside
# IETF protocol assignments, Oracle Cloud's metadata (192.0.0.192) among them: not global, whatever the
# Python version's ipaddress tables say
_ALSO_REFUSED = (ipaddress.ip_network("192.0.0.0/24"),)
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, NAT64, Teredo client), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.teredo is not None:
        return address.teredo[1]
    return None


def is_public_address(address: IPAddress) -> bool:
    """Whether ``address`` is a global unicast address (judged by the IPv4 address it embeds, if any)."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            return is_public_address(inner)
    refused = any(address in network for network in _ALSO_REFUSED)
    return address.is_global and not address.is_multicast and not refused


class AddressPolicy:
    """Refuses URLs that are not ``http(s)`` or whose host is not public (unless ``allow_private``)."""

    def __init__(self, *, allow_private: bool = False) -> None:
        self.allow_private = allow_private

    def check_body(self, content: bytes) -> None:
        """:meth:`check` every URL a JSON request body names (``messages.remote_urls``: at any depth);
        a body that is not JSON is left to whoever parses it. It may resolve host names: off the event
        loop in async code."""
        if b"http" not in content.lower():
            return
        from .messages import remote_urls

        try:
            body = json.loads(content)
        except (ValueError, RecursionError):
            return
        for url in remote_urls(body):
            self.check(url)

    def check(self, url: str) -> None:
        """Raise :class:`ImageError` for a malformed URL, :class:`ForbiddenURLError` for a refused host."""
        shown = url[:100]
        # a backslash, space or control character parses differently in other URL parsers (WHATWG
        # reads "\\" as "/"), so the host we check might not be the host the upstream connects to
        if any(c == "\\" or ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
            raise ImageError(f"image URL {shown!r} holds a backslash, space or control character")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ImageError(f"image URL {shown!r} is malformed: {exc}") from exc
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ImageError(f"image URL {shown!r} is not an http(s) URL")
        if self.allow_private:
            return
        for address in self.resolve(parts.hostname, port or (443 if scheme == "https" else 80)):
            if not is_public_address(address):
                raise ForbiddenURLError(
                    f"image host {parts.hostname!r} is or resolves to a non-public address ({address}); refused "
                    "(set allow_private_networks to allow it)",
                    url=shown,
                )

    @staticmethod
    def resolve(host: str, port: int) -> list[IPAddress]:
        """Every address ``host`` resolves to (an IP literal resolves to itself, with no lookup)."""
        try:
            infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError) as exc:  # unresolvable: we cannot tell it is public
            raise ForbiddenURLError(f"cannot resolve image host {host!r}; refused", url=host) from exc
        return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


class RemoteImageFetcher:
    def __init__(self, *, timeout: float = 5.0, max_bytes: int = 20 * 1024 * 1024, allow_private: bool = False) -> None:
        self.timeout, self.max_bytes = timeout, max_bytes
        self.policy = AddressPolicy(allow_private=allow_private)

    def check(self, url: str) -> None:
        self.policy.check(url)

    def fetch(self, url: str) -> bytes:
        self.check(url)
        data = bytearray()
        try:
            with httpx2.stream("GET", url, timeout=self.timeout, follow_redirects=False) as response:
                if response.status_code != 200:
                    raise ImageError(f"fetching image {url[:100]!r} answered {response.status_code}")
                for chunk in response.iter_bytes():
                    data.extend(chunk)
                    if len(data) > self.max_bytes:
                        raise ImageError(f"image at {url[:100]!r} is over {self.max_bytes} bytes")
        except httpx2.HTTPError as exc:
            raise ImageError(f"cannot fetch image {url[:100]!r}: {type(exc).__name__}") from exc
        return bytes(data)
