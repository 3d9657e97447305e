"""``ResGateConfig``: the ``config.json`` of a saved gate directory (a transformers config)."""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedConfig

from .decision import default_class_names

__all__ = ["ResGateConfig", "DEFAULT_BACKBONE"]

DEFAULT_BACKBONE = "HuggingFaceTB/SmolVLM-256M-Instruct"


class ResGateConfig(PreTrainedConfig):  # type: ignore[no-untyped-call]  # transformers' __init_subclass__ is untyped
    """Which backbone, feature layer/window, profile, ladder and class names a gate head was
    trained with. ``layer`` is ``"middle"`` or a hidden-state index (0 = embeddings)."""

    model_type = "resgate"

    def __init__(
        self,
        gate_type: str = "smolvlm-mlp",
        backbone: str = DEFAULT_BACKBONE,
        layer: int | str = "middle",
        window: int = 0,
        profile: str = "single-tile",
        ladder: list[Any] | None = None,
        class_names: list[str] | None = None,
        num_classes: int = 3,
        head_hidden: int = 256,
        feature_dim: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.gate_type = gate_type
        self.backbone = backbone
        self.layer = layer
        self.window = window
        self.profile = profile
        self.ladder = list(ladder) if ladder is not None else [384, 512, "full"]
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names else default_class_names(num_classes)
        self.head_hidden = head_hidden
        self.feature_dim = feature_dim
        super().__init__(**kwargs)

    @property
    def binary(self) -> bool:
        return self.num_classes == 2
