"""Family policies: how each model family turns a resolution into compute.

``get_policy(family, model=None)`` returns a policy; ``model`` (a model directory or Hub id) lets it
read the processor config (tile size, tokens per tile, pixel limits) and, with no family given, the
family itself from ``config.json``'s ``model_type``. Third-party families register a
:class:`FamilyPolicy` subclass in the ``resgate_router.policies`` entry-point group.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..hub import read_json, resolve_dir
from .base import FamilyPolicy, ImagePlan, RequestPlan, scaled_size
from .generic import GenericPolicy
from .idefics3 import Idefics3Policy
from .internvl import InternVLPolicy
from .openai_api import OpenAIPolicy
from .qwen import QwenVLPolicy

__all__ = [
    "FamilyPolicy",
    "ImagePlan",
    "RequestPlan",
    "scaled_size",
    "get_policy",
    "detect_family",
    "available_families",
    "ENTRY_POINT_GROUP",
]

ENTRY_POINT_GROUP = "resgate_router.policies"
BUILTIN = ("idefics3", "qwen2_vl", "qwen3_vl", "internvl", "openai", "generic")
_MODEL_TYPES = {
    "idefics3": "idefics3",
    "smolvlm": "idefics3",
    "granite_docling": "idefics3",
    "qwen2_vl": "qwen2_vl",
    "qwen2_5_vl": "qwen2_vl",
    "qwen3_vl": "qwen3_vl",
    "qwen3_vl_moe": "qwen3_vl",
    "internvl": "internvl",
    "internvl_chat": "internvl",
}
_CONFIG_FILES = ["config.json", "processor_config.json", "preprocessor_config.json", "tokenizer.json"]


def detect_family(model_type: str | None) -> str:
    """The family of a ``config.json`` ``model_type`` (``generic`` when unknown)."""
    return _MODEL_TYPES.get((model_type or "").lower(), "generic")


def _plugins() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_families() -> list[str]:
    return sorted(set(BUILTIN) | set(_plugins()))


def get_policy(family: str | None = None, model: str | Path | None = None, **options: Any) -> FamilyPolicy:
    """The policy of ``family`` (detected from ``model`` when None), configured from ``model``'s
    processor files if given, else with the defaults of the family's transformers image processor."""
    directory = resolve_dir(model, "model", allow_patterns=_CONFIG_FILES) if model is not None else None
    config = read_json(directory / "config.json") if directory else {}
    family = family or detect_family(config.get("model_type"))
    processor = (
        {**read_json(directory / "preprocessor_config.json"), **read_json(directory / "processor_config.json")}
        if directory
        else {}
    )
    if family == "idefics3":
        if not processor:
            return Idefics3Policy(**options)
        policy = Idefics3Policy.from_processor_config(processor, config, **options)
        policy.split_newline_extra = _split_newline_extra(directory)
        return policy
    if family in ("qwen2_vl", "qwen3_vl"):
        return QwenVLPolicy.from_processor_config(family, processor) if processor else QwenVLPolicy(family, **options)
    builtin: dict[str, type[FamilyPolicy]] = {
        "internvl": InternVLPolicy,
        "openai": OpenAIPolicy,
        "generic": GenericPolicy,
    }
    if family in builtin:
        return builtin[family](**options)
    plugin = _plugins().get(family)
    if plugin is None:
        raise ConfigError(f"unknown model family {family!r}: available are {available_families()}")
    policy_class = plugin.load()  # an entry point's object: untyped
    plugged: FamilyPolicy = (
        policy_class.from_model(directory, **options)
        if directory and hasattr(policy_class, "from_model")
        else policy_class(**options)
    )
    return plugged


def _split_newline_extra(directory: Path | None) -> int:
    """1 when the model's tokenizer splits "\\n\\n" into two tokens, else 0."""
    if directory is None or not (directory / "tokenizer.json").is_file():
        return 0
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return 0
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    return len(tokenizer.encode("\n\n", add_special_tokens=False).ids) - 1
