"""Hooks on a router's request lifecycle, in the style of instructor's ``client.on(...)``.

Events, in the order they fire for one request:

- ``gate_decision(record, decisions)``: the gate answered for the request's images
- ``request_routed(routed)``: the rewritten request, before it goes downstream
- ``response_received(record, response)``: the downstream answered (a stream: once it ended)
- ``error(record, exception)``: the request failed (refused, gate error raised, downstream failure)

The savings log, the Prometheus metrics and the stats are subscribers of the last two. A handler that
raises is logged and skipped: a hook never takes a request down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal, get_args

from .errors import ConfigError

__all__ = ["HookName", "Hooks"]

logger = logging.getLogger(__name__)

HookName = Literal["gate_decision", "request_routed", "response_received", "error"]
_NAMES: tuple[str, ...] = get_args(HookName)


class Hooks:
    def __init__(self) -> None:
        self._handlers: dict[str, list[Callable[..., Any]]] = {name: [] for name in _NAMES}

    def on(self, name: HookName, handler: Callable[..., Any]) -> Callable[..., Any]:
        """Call ``handler`` on every ``name`` event, after the handlers already registered."""
        self._handlers[_check(name)].append(handler)
        return handler

    def off(self, name: HookName, handler: Callable[..., Any]) -> None:
        handlers = self._handlers[_check(name)]
        if handler in handlers:
            handlers.remove(handler)

    def clear(self, name: HookName | None = None) -> None:
        for key in [_check(name)] if name is not None else _NAMES:
            self._handlers[key].clear()

    def emit(self, name: HookName, *args: Any) -> None:
        for handler in list(self._handlers[name]):
            try:
                handler(*args)
            except Exception:  # a subscriber's bug is logged, never the request's failure
                logger.exception("resgate hook %r handler %r failed", name, handler)


def _check(name: str) -> str:
    if name not in _NAMES:
        raise ConfigError(f"unknown hook {name!r}: use one of {list(_NAMES)}")
    return name
