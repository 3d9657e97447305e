"""Per-request overrides: the ``resgate`` request field (or ``x-resgate-resolution`` header) and an
image part's ``detail``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import InputError
from ..ladder import Ladder
from ..messages import ImageRef

__all__ = ["OVERRIDE_FIELD", "is_off", "forced_class"]

OVERRIDE_FIELD = "resgate"
_OFF = {"off", "none", "disable", "disabled", "false"}


def is_off(value: Any) -> bool:
    """Whether the override turns gating off for the request (the request goes out untouched)."""
    if value is False:
        return True
    if isinstance(value, dict):
        return value.get("enabled") is False or is_off(value.get("resolution"))
    return isinstance(value, str) and value.strip().lower() in _OFF


def forced_class(ref: ImageRef, override: Any, ladder: Ladder, class_names: Sequence[str]) -> int | None:
    """The class a request forces for ``ref``: the override, else the part's ``detail``; None: gate it."""
    if override is not None and str(override).lower() != "auto":
        return _class_of(override, ladder, class_names)
    if ref.detail == "low":
        return 0
    if ref.detail == "high":
        return len(ladder) - 1
    return None


def _class_of(value: Any, ladder: Ladder, class_names: Sequence[str]) -> int:
    if isinstance(value, dict):
        value = value.get("resolution", value.get("class"))
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(ladder):
        return value
    text = str(value).strip().lower()
    names = list(class_names)
    if text in names:
        return names.index(text)
    rungs = [str(r) for r in ladder.rungs]
    if text in rungs:
        return rungs.index(text)
    raise InputError(
        f"invalid resgate override {value!r}: use 'auto', 'off', a class name {names}, a class index or a rung {rungs}"
    )
