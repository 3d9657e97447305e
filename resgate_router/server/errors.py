"""The one mapping from resgate-router errors to HTTP status codes and OpenAI-format error bodies."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from ..errors import (
    AdapterError,
    InputError,
    ResgateError,
    UpstreamStatusError,
    UpstreamTimeout,
)

__all__ = ["status_of", "error_response"]


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
    error = {"message": message, "type": kind, "param": None, "code": type(exc).__name__}
    headers = {}
    if isinstance(exc, UpstreamStatusError):
        error["upstream_status"] = exc.status_code
        if status == 429 and exc.retry_after:  # the client's SDK backs off as the upstream asked
            headers["Retry-After"] = exc.retry_after
    return JSONResponse({"error": error}, status_code=status, headers=headers)
