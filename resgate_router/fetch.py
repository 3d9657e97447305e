"""Fetching remote ``http(s)`` images for the gate, safely: only when enabled, with a timeout, a size
cap, no redirects, and a refusal of loopback, private, link-local and other non-public addresses
unless explicitly allowed (server-side request forgery). The check resolves the host first; a DNS
answer that changes between the check and the connection (rebinding) is not covered."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import httpx

from .errors import ImageError

__all__ = ["RemoteImageFetcher"]


class RemoteImageFetcher:
    def __init__(self, *, timeout: float = 5.0, max_bytes: int = 20 * 1024 * 1024, allow_private: bool = False) -> None:
        self.timeout, self.max_bytes, self.allow_private = timeout, max_bytes, allow_private

    def check(self, url: str) -> None:
        """Refuse URLs whose host resolves to a non-public address (unless ``allow_private``)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ImageError(f"image URL {url[:100]!r} is not an http(s) URL")
        if self.allow_private:
            return
        try:
            infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        except (socket.gaierror, UnicodeError) as exc:
            raise ImageError(f"cannot resolve image host {parts.hostname!r}") from exc
        for info in infos:
            address = ipaddress.ip_address(info[4][0])
            if not address.is_global or address.is_multicast:
                raise ImageError(f"image host {parts.hostname!r} resolves to a non-public address; refused")

    def fetch(self, url: str) -> bytes:
        self.check(url)
        data = bytearray()
        try:
            with httpx.stream("GET", url, timeout=self.timeout, follow_redirects=False) as response:
                if response.status_code != 200:
                    raise ImageError(f"fetching image {url[:100]!r} answered {response.status_code}")
                for chunk in response.iter_bytes():
                    data.extend(chunk)
                    if len(data) > self.max_bytes:
                        raise ImageError(f"image at {url[:100]!r} is over {self.max_bytes} bytes")
        except httpx.HTTPError as exc:
            raise ImageError(f"cannot fetch image {url[:100]!r}: {type(exc).__name__}") from exc
        return bytes(data)
