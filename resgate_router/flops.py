"""Prefill FLOPs estimates from a model config (an estimate, not a measurement).

LLM: 2 x non-embedding parameters per token, plus causal attention 2 x layers x T^2 x d.
Vision encoder (tiled families): 2 x vision parameters per patch plus attention, per tile.
Savings are differences of these at the baseline and routed token/tile counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ResgateError
from .hub import read_json, resolve_dir

__all__ = ["ModelCost", "SMOLVLM_256M", "model_cost"]


@dataclass(frozen=True)
class ModelCost:
    text_params: float  # non-embedding decoder parameters
    text_layers: int
    text_width: int  # attention width (heads x head_dim)
    vision_params: float = 0.0
    vision_layers: int = 0
    vision_width: int = 0
    patches_per_tile: int = 0

    def text_flops(self, tokens: float) -> float:
        return 2 * self.text_params * tokens + 2 * self.text_layers * tokens**2 * self.text_width

    def vision_flops(self, tiles: float) -> float:
        per_tile = (
            2 * self.vision_params * self.patches_per_tile
            + 4 * self.vision_layers * self.patches_per_tile**2 * self.vision_width
        )
        return tiles * per_tile

    def prefill_flops(self, tokens: float, tiles: float = 0) -> float:
        return self.text_flops(tokens) + self.vision_flops(tiles)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelCost | None:
        """From an Idefics3-style ``config.json`` (text_config + vision_config); None if incomplete."""
        text = config.get("text_config", config)
        try:
            d, layers, inter = int(text["hidden_size"]), int(text["num_hidden_layers"]), int(text["intermediate_size"])
        except (KeyError, TypeError, ValueError):
            return None
        heads = int(text.get("num_attention_heads", 1))
        head_dim = int(text.get("head_dim") or d // heads)
        kv = int(text.get("num_key_value_heads", heads))
        attn = d * heads * head_dim * 2 + d * kv * head_dim * 2
        cost = dict(text_params=layers * (attn + 3 * d * inter), text_layers=layers, text_width=heads * head_dim)
        vision = config.get("vision_config")
        if isinstance(vision, dict) and "hidden_size" in vision:
            vd, vl, vi = (
                int(vision["hidden_size"]),
                int(vision.get("num_hidden_layers", 0)),
                int(vision.get("intermediate_size", 0)),
            )
            patches = (int(vision.get("image_size", 512)) // int(vision.get("patch_size", 16))) ** 2
            cost.update(
                vision_params=vl * (4 * vd * vd + 2 * vd * vi),
                vision_layers=vl,
                vision_width=vd,
                patches_per_tile=patches,
            )
        return cls(**cost)


#: HuggingFaceTB/SmolVLM-256M-Instruct (RESEARCH.md section 2), the default for the idefics3 family.
SMOLVLM_256M = ModelCost.from_config(
    {
        "text_config": {
            "hidden_size": 576,
            "num_hidden_layers": 30,
            "intermediate_size": 1536,
            "num_attention_heads": 9,
            "num_key_value_heads": 3,
            "head_dim": 64,
        },
        "vision_config": {
            "hidden_size": 768,
            "num_hidden_layers": 12,
            "intermediate_size": 3072,
            "image_size": 512,
            "patch_size": 16,
        },
    }
)


def model_cost(model: str | Path | None, family: str) -> ModelCost | None:
    """The cost model of a downstream: from its ``config.json`` when ``model`` is given (None if that
    cannot be read), else SmolVLM-256M's for the idefics3 family."""
    if model is not None:
        try:
            return ModelCost.from_config(
                read_json(resolve_dir(model, "model", allow_patterns=["config.json"]) / "config.json")
            )
        except ResgateError:
            return None
    return SMOLVLM_256M if family == "idefics3" else None
