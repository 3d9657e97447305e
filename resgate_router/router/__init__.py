"""The routing core: :class:`BaseRouter` (the steps without downstream I/O), :class:`Router` (sync)
and :class:`AsyncRouter` (async, micro-batched gate calls)."""

from __future__ import annotations

from .aio import AsyncRouter
from .base import BaseRouter, RoutedRequest, RouterResponse, elapsed_ms
from .overrides import OVERRIDE_FIELD
from .sync import Router

__all__ = ["BaseRouter", "Router", "AsyncRouter", "RoutedRequest", "RouterResponse", "OVERRIDE_FIELD", "elapsed_ms"]
