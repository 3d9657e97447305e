"""Finding and reading gate files: our own format and the CARES reference checkpoint.

Our format: ``config.json`` (:class:`ResGateConfig`) + ``head.safetensors`` (keys ``head.0.*``,
``head.1.*``, ``head.3.*``) + the backbone's processor files.
Reference format: ``pytorch_model.bin`` or ``model.safetensors`` holding the whole module's state
dict, keys ``backbone.<HF Idefics3ForConditionalGeneration keys>`` and ``head.{0,1,3}.*``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import torch

from ..errors import GateLoadError
from ..hub import resolve_dir

__all__ = [
    "CONFIG_FILE",
    "HEAD_FILE",
    "REFERENCE_FILES",
    "HEAD_KEYS",
    "resolve_dir",
    "is_own_format",
    "reference_file",
    "load_state_dict",
    "split_reference_state",
    "check_head_state",
]

CONFIG_FILE = "config.json"
HEAD_FILE = "head.safetensors"
REFERENCE_FILES = ("model.safetensors", "pytorch_model.bin")
HEAD_KEYS = ("head.0.weight", "head.0.bias", "head.1.weight", "head.1.bias", "head.3.weight", "head.3.bias")
_BACKBONE_PREFIXES = ("backbone.model.", "backbone.")


def is_own_format(directory: Path) -> bool:
    config = directory / CONFIG_FILE
    if not config.is_file():
        return False
    try:
        settings: dict[str, object] = json.loads(config.read_text())
        return settings.get("model_type") == "resgate"
    except (json.JSONDecodeError, OSError) as exc:
        raise GateLoadError(f"unreadable gate config {config}: {exc}", path=str(config)) from exc


def reference_file(directory: Path) -> Path:
    for name in REFERENCE_FILES:
        if (directory / name).is_file():
            return directory / name
    raise GateLoadError(
        f"{directory} is neither a resgate gate directory ({CONFIG_FILE} with model_type 'resgate' "
        f"and {HEAD_FILE}) nor a reference CARES checkpoint (one of {', '.join(REFERENCE_FILES)})",
        path=str(directory),
    )


def load_state_dict(file: Path) -> dict[str, torch.Tensor]:
    if not file.is_file():
        raise GateLoadError(f"missing file {file}", path=str(file))
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(file))
        return cast(dict[str, torch.Tensor], torch.load(str(file), map_location="cpu", weights_only=True))
    except Exception as exc:  # corrupt archives raise many types; all mean "unreadable file"
        raise GateLoadError(f"cannot read weights file {file}: {exc}", path=str(file)) from exc


def split_reference_state(
    state: dict[str, torch.Tensor], file: Path
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Split a reference state dict into (Idefics3Model keys, head keys)."""
    head = {k: v for k, v in state.items() if k.startswith("head.")}
    backbone: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for prefix in _BACKBONE_PREFIXES:
            if key.startswith(prefix):
                backbone[key[len(prefix) :]] = value
                break
    if not backbone:
        raise GateLoadError(
            f"{file} has no 'backbone.*' keys: not a CARES gate checkpoint", path=str(file), key="backbone."
        )
    return backbone, head


def check_head_state(head: dict[str, torch.Tensor], file: Path, feature_dim: int) -> tuple[int, int]:
    """Validate head keys and shapes; return (hidden, output units)."""
    for key in HEAD_KEYS:
        if key not in head:
            raise GateLoadError(f"{file} is missing key {key!r}", path=str(file), key=key)
    if tuple(head["head.0.weight"].shape) != (feature_dim,):
        raise GateLoadError(
            f"{file}: key 'head.0.weight' has shape {tuple(head['head.0.weight'].shape)}, "
            f"but the backbone's hidden size is {feature_dim}",
            path=str(file),
            key="head.0.weight",
        )
    hidden, in_dim = head["head.1.weight"].shape
    if in_dim != feature_dim:
        raise GateLoadError(
            f"{file}: key 'head.1.weight' expects {in_dim} features, the backbone gives {feature_dim}",
            path=str(file),
            key="head.1.weight",
        )
    out, hidden_in = head["head.3.weight"].shape
    if hidden_in != hidden:
        raise GateLoadError(
            f"{file}: key 'head.3.weight' has shape {tuple(head['head.3.weight'].shape)}, "
            f"inconsistent with head.1 ({hidden})",
            path=str(file),
            key="head.3.weight",
        )
    return int(hidden), int(out)
