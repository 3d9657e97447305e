"""A PEFT LoRA adapter directory (``adapter_config.json`` + ``adapter_model.safetensors``): reading
it with typed errors and attaching it to a base model (the Granite-Docling gate's)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from ..errors import GateLoadError

if TYPE_CHECKING:
    from torch.nn.modules.module import _IncompatibleKeys

__all__ = ["ADAPTER_CONFIG", "ADAPTER_WEIGHTS", "read_lora_config", "adapter_state", "attach_adapter"]

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def read_lora_config(path: Path) -> Any:
    from peft import PeftConfig

    if not (path / ADAPTER_CONFIG).is_file():
        raise GateLoadError(f"{path} has no {ADAPTER_CONFIG}: not a LoRA adapter directory", path=str(path))
    try:
        config = PeftConfig.from_pretrained(str(path))
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise GateLoadError(f"unreadable {path / ADAPTER_CONFIG}: {exc}", path=str(path / ADAPTER_CONFIG)) from exc
    if str(config.peft_type).split(".")[-1].upper() != "LORA":
        raise GateLoadError(f"{path / ADAPTER_CONFIG}: peft_type {config.peft_type}, expected LORA", path=str(path))
    return config


def adapter_state(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    file = path / ADAPTER_WEIGHTS
    if not file.is_file():
        raise GateLoadError(f"missing adapter weights {file}", path=str(file))
    try:
        return load_file(str(file))
    except (OSError, SafetensorError) as exc:
        raise GateLoadError(f"cannot read adapter weights {file}: {exc}", path=str(file)) from exc


def attach_adapter(base: torch.nn.Module, lora_config: Any, state: dict[str, torch.Tensor] | None, where: Path) -> Any:
    """``base`` with LoRA layers (PEFT), loaded from ``state`` when given; every LoRA weight must be there."""
    from peft import get_peft_model, set_peft_model_state_dict

    lora_config.base_model_name_or_path = base.name_or_path  # the directory actually loaded
    try:
        model = get_peft_model(base, lora_config)
    except ValueError as exc:  # e.g. target modules absent from the base
        raise GateLoadError(f"adapter {where} does not fit the base model: {exc}", path=str(where)) from exc
    if state is None:
        return model
    try:
        # torch's load_state_dict result, which peft annotates as a bare namedtuple
        result = cast("_IncompatibleKeys", set_peft_model_state_dict(model, state))
    except RuntimeError as exc:  # shape mismatch
        raise GateLoadError(f"adapter {where} does not fit the base model: {exc}", path=str(where)) from exc
    missing = [k for k in result.missing_keys if ".lora_" in k]
    if missing or result.unexpected_keys:
        key = (missing or result.unexpected_keys)[0]
        what = "is missing" if missing else "has unexpected"
        raise GateLoadError(f"adapter {where} {what} key {key!r}", path=str(where / ADAPTER_WEIGHTS), key=key)
    return model
