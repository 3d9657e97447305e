"""Local directory or Hugging Face Hub repo: one resolver for gates, backbones and model configs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import GateLoadError

__all__ = ["resolve_dir", "read_json"]


def resolve_dir(path_or_id: str | Path, what: str = "gate", *, allow_patterns: list[str] | None = None) -> Path:
    """A local directory, or a Hub repo id downloaded (or taken from the cache) by huggingface_hub."""
    path = Path(path_or_id).expanduser()
    if path.is_dir():
        return path
    text = str(path_or_id)
    if path.exists() or text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise GateLoadError(f"{what} directory not found: {text}", path=text)
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError as exc:
        raise GateLoadError(
            f"{what} {text!r} is not a local directory and huggingface_hub is not installed", path=text
        ) from exc
    try:
        return Path(snapshot_download(text, allow_patterns=allow_patterns))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as exc:
        raise GateLoadError(f"cannot fetch {what} {text!r} from the Hugging Face Hub: {exc}", path=text) from exc


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file as a dict; {} when it does not exist."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, OSError, UnicodeDecodeError) as exc:
        raise GateLoadError(f"unreadable JSON file {path}: {exc}", path=str(path)) from exc
    return data if isinstance(data, dict) else {}
