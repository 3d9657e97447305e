"""The one exception tree of resgate-router.

::

    ResgateError
    ├── ConfigError                  bad ladder, profile, layer or gate settings
    ├── InputError (ValueError)      the caller's input cannot be used
    │   ├── ImageError               empty, corrupt, unsupported or oversized image
    │   │   ├── ImageTooLargeError   over the pixel limit (decompression bombs)
    │   │   └── ForbiddenURLError    a URL to a loopback, private, link-local or metadata address
    │   └── QuestionError            question of the wrong type or too long
    ├── GateError                    the gate failed while predicting
    │   ├── GateTimeoutError         no decision within the router's time budget
    │   └── GateLoadError            a gate directory or checkpoint cannot be loaded
    ├── AdapterError                 the downstream could not be reached or answered badly
    │   ├── AdapterNotFoundError     no adapter registered under that name
    │   ├── UpstreamConnectionError  connection refused or reset (after retries)      -> 502
    │   ├── UpstreamStatusError      the upstream answered 4xx/5xx (after retries)      -> 502
    │   ├── UpstreamTimeout          no answer within the timeout                       -> 504
    │   └── UpstreamProtocolError    malformed JSON or a stream cut mid-way             -> 502
    └── MissingExtraError (ImportError)  an optional dependency is not installed

Errors carry structured attributes (``path``, ``key``, ``extra``) so callers and the CLI can
report them without parsing messages.
"""

from __future__ import annotations

__all__ = [
    "ResgateError",
    "ConfigError",
    "InputError",
    "ImageError",
    "ImageTooLargeError",
    "ForbiddenURLError",
    "QuestionError",
    "GateError",
    "GateLoadError",
    "AdapterError",
    "AdapterNotFoundError",
    "GateTimeoutError",
    "UpstreamConnectionError",
    "UpstreamStatusError",
    "UpstreamTimeout",
    "UpstreamProtocolError",
    "MissingExtraError",
]


class ResgateError(Exception):
    """Base class of every error raised on purpose by resgate-router."""


class ConfigError(ResgateError):
    """A setting is invalid (unknown ladder, profile, layer, ...)."""


class InputError(ResgateError, ValueError):
    """The caller's input cannot be used."""


class ImageError(InputError):
    """An image is empty, corrupt, of an unsupported format, or otherwise unusable."""


class ImageTooLargeError(ImageError):
    """An image has more pixels than the configured limit (e.g. a decompression bomb)."""

    def __init__(
        self, message: str, *, width: int | None = None, height: int | None = None, max_pixels: int | None = None
    ) -> None:
        self.width, self.height, self.max_pixels = width, height, max_pixels
        super().__init__(message)


class ForbiddenURLError(ImageError):
    """A URL in the request points at a non-public address (server-side request forgery). Never
    failed open: the request is refused, and the URL is neither fetched nor forwarded."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        self.url = url
        super().__init__(message)


class QuestionError(InputError):
    """A question is not a string, or is too long for the gate's backbone."""


class GateError(ResgateError):
    """The gate failed while computing a decision."""


class GateTimeoutError(GateError):
    """The gate did not answer within the router's time budget (``gate_timeout_s``)."""


class GateLoadError(GateError):
    """A gate directory or checkpoint is missing, incomplete or inconsistent."""

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None) -> None:
        self.path, self.key = path, key
        super().__init__(message)


class AdapterError(ResgateError):
    """The downstream could not be reached or answered badly. ``adapter`` names the adapter."""

    def __init__(self, message: str, *, adapter: str | None = None) -> None:
        self.adapter = adapter
        super().__init__(message)


class AdapterNotFoundError(AdapterError):
    """No adapter is registered under the requested name; the message lists the available ones."""


class UpstreamConnectionError(AdapterError):
    """The upstream refused or reset the connection (after the configured retries)."""


class UpstreamStatusError(AdapterError):
    """The upstream answered with an error status (after retries for 429/5xx)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: str = "",
        adapter: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        self.status_code, self.body, self.retry_after = status_code, body, retry_after
        super().__init__(message, adapter=adapter)


class UpstreamTimeout(AdapterError):
    """The upstream did not answer within the timeout."""


class UpstreamProtocolError(AdapterError):
    """The upstream's answer was not valid (malformed JSON, a stream cut mid-way)."""


class MissingExtraError(ResgateError, ImportError):
    """An optional dependency is missing; the message gives the pip command that installs it."""

    def __init__(self, extra: str, module: str) -> None:
        self.extra, self.module = extra, module
        super().__init__(f"{module!r} is required for this feature: pip install 'resgate-router[{extra}]'")
