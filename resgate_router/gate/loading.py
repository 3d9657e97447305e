"""``load_gate``: one entry point for every kind of gate a user can name (router, proxy, plugin,
bench). A gate directory says which kind it is in ``config.json`` (``gate_type``; a directory
without it is the MLP gate of CARES); ``legibility`` names the zero-parameter baseline and
``builtin:NAME`` a gate shipped inside the package (``builtin:docs``: :mod:`.docs`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..hub import resolve_dir
from ..ladder import Ladder

__all__ = ["load_gate", "gate_type", "builtin_gates", "GATE_TYPES"]


def _mlp(path: str, **kwargs: Any) -> Any:
    from . import SmolVLMGate

    return SmolVLMGate.from_pretrained(path, **kwargs)


def _granite(path: str, **kwargs: Any) -> Any:
    from . import GraniteDoclingGate

    return GraniteDoclingGate.from_pretrained(path, **kwargs)


def _onnx(path: str, **kwargs: Any) -> Any:
    from .onnx import OnnxGate

    return OnnxGate.from_pretrained(path, **kwargs)


def _docs(path: str, **kwargs: Any) -> Any:
    from .docs import DocsGate

    return DocsGate.from_pretrained(path, **kwargs)


#: ``gate_type`` in a gate directory's config.json -> loader(path, **kwargs)
GATE_TYPES: dict[str, Callable[..., Any]] = {
    "smolvlm-mlp": _mlp,  # ResGateConfig's; also a directory that does not say (a reference CARES checkpoint)
    "onnx": _onnx,  # written by ``resgate export``
    "granite-lora": _granite,  # Granite-Docling + LoRA adapter (GraniteDoclingGate)
    "docs": _docs,  # offline question-aware gate (DocsGate): page analysis + question words + head
}
BUILTIN_DIR = Path(__file__).parent / "builtin"
BUILTIN_PREFIX = "builtin:"
MLP = "smolvlm-mlp"
_ALIASES = {"mlp": MLP}
_KIND_FILES = ["config.json", "adapter_config.json"]


def builtin_gates() -> list[str]:
    """The names ``builtin:NAME`` accepts: the gates shipped in the package."""
    if not BUILTIN_DIR.is_dir():
        return []
    return sorted(p.name for p in BUILTIN_DIR.iterdir() if (p / "config.json").is_file())


def _builtin_dir(spec: str) -> Path:
    name = spec[len(BUILTIN_PREFIX) :]
    if name not in builtin_gates():
        raise ConfigError(f"{spec!r}: no such built-in gate; built in: {[BUILTIN_PREFIX + n for n in builtin_gates()]}")
    return BUILTIN_DIR / name


def gate_type(path: str | Path) -> str:
    """The kind of gate stored at ``path``, a directory or a Hub id (only its two config files are
    fetched): ``smolvlm-mlp`` when the config does not say, ``granite-lora`` for a bare PEFT adapter."""
    directory = resolve_dir(path, "gate", allow_patterns=_KIND_FILES)
    config = directory / "config.json"
    if not config.is_file():
        return "granite-lora" if (directory / "adapter_config.json").is_file() else MLP
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{config}: not a readable JSON gate config ({exc})") from exc
    kind = str(data.get("gate_type", MLP))
    return _ALIASES.get(kind, kind)


def load_gate(spec: str | Path, *, ladder: str | Ladder | None = None, policy: Any = None, **kwargs: Any) -> Any:
    """A gate from a directory or Hub id (any kind), ``builtin:NAME`` or ``legibility``. ``policy``
    (the downstream's family policy) lets ``legibility`` and ``docs`` pick the largest rung of equal
    cost; ``kwargs`` go to a directory's loader (``device``, ``dtype``, ``profile`` ...): ``None``
    values are left out, and an option the kind does not take is a :class:`ConfigError`."""
    if str(spec) == "legibility":
        from .legibility import LegibilityGate

        return LegibilityGate(ladder=ladder or "card", policy=policy)
    if str(spec).startswith(BUILTIN_PREFIX):
        spec = _builtin_dir(str(spec))
    kind = gate_type(spec)
    if kind not in GATE_TYPES:
        raise ConfigError(f"{spec}: unknown gate_type {kind!r}; known: {sorted(GATE_TYPES)}")
    options = {k: v for k, v in {**kwargs, "ladder": ladder}.items() if v is not None}
    if kind == "docs" and policy is not None:
        options["policy"] = policy
    try:
        return GATE_TYPES[kind](str(spec), **options)
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):
            raise
        raise ConfigError(f"{spec}: a {kind!r} gate does not take that option ({exc})") from exc
