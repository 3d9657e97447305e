"""The one mapping from resgate-router errors to HTTP status codes and OpenAI-format error bodies."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse

from ..errors import (
    AdapterError,
    ImageError,
    InputError,
    ResgateError,
    UpstreamStatusError,
    UpstreamTimeout,
)

__all__ = ["status_of", "error_response", "fetch_failure"]


def status_of(exc: BaseException) -> int:
    if isinstance(exc, InputError):
        return 400
    if isinstance(exc, UpstreamStatusError) and exc.status_code < 500:
        return exc.status_code  # the upstream refused the client's request: its 4xx, its message
    if isinstance(exc, UpstreamTimeout):
        return 504
    if isinstance(exc, AdapterError):
        return 502
    return 500


def error_response(exc: BaseException) -> JSONResponse:
    """The OpenAI-format error body; anything that is not a :class:`ResgateError` is a 500."""
    status = status_of(exc)
    kind = "invalid_request_error" if status < 500 else "upstream_error" if status in (502, 504) else "server_error"
    # an unexpected error's text may hold internals (paths, values): a public proxy does not echo it
    message = str(exc) if isinstance(exc, ResgateError) else "internal error in resgate-router (logged)"
    error: dict[str, object] = {"message": message, "type": kind, "param": None, "code": type(exc).__name__}
    headers = {}
    if isinstance(exc, UpstreamStatusError):
        error["upstream_status"] = exc.status_code
        if status == 429 and exc.retry_after:  # the client's SDK backs off as the upstream asked
            headers["Retry-After"] = exc.retry_after
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def fetch_failure(status: int, body: str, urls: list[str]) -> ImageError | None:
    """An upstream 5xx that names the host of an image URL we passed on (vLLM answers 500 "Cannot
    connect to host H:P" when it cannot fetch one), as the client's 400: the URL is theirs to fix."""
    if status < 500:
        return None
    for url in urls:
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port
        except ValueError:
            continue
        port = port or (443 if parts.scheme.lower() == "https" else 80)
        if host and any(name in body for name in (f"{host}:{port}", f"[{host}]:{port}")):
            return ImageError(f"the upstream could not fetch image URL {url[:100]!r}: {_message(body)[:300]}")
    return None


def _message(body: str) -> str:
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return body
