"""Checks for optional dependencies, raising :class:`MissingExtraError` with the pip command."""

from __future__ import annotations

import importlib.util

from .errors import MissingExtraError

__all__ = ["require"]


def require(extra: str, *modules: str) -> None:
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:  # an import hook may refuse the lookup itself
            found = False
        if not found:
            raise MissingExtraError(extra, module)
