"""The gate as a torch module: an Idefics3 backbone cut after the feature layer, mean pooling over
the question tokens, and the CARES MLP head.

The cut is what makes the gate cheap: decoder layers after the feature layer, the final norm and
the lm_head are dropped, and (with ``window == 0``) no other layer's hidden state is kept.
Its output equals the reference recipe (full forward with ``output_hidden_states=True``, pick
``hidden_states[k]``) because ``hidden_states[k]`` for ``k < L`` is the raw output of decoder
layer ``k``; for ``k == L`` transformers returns the normed state, so the norm is kept then.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn
from transformers import AutoConfig, AutoModel
from transformers.utils.generic import ModelOutput

from ..errors import ConfigError
from .config import ResGateConfig

__all__ = ["resolve_layer", "make_head", "masked_mean_pool", "FeatureBackbone", "ResGateModel", "ResGateOutput"]


def resolve_layer(layer: int | str, num_layers: int) -> int:
    """``"middle"`` -> L // 2; an int (or digit string) clamped to [0, L] as the reference does."""
    if isinstance(layer, str):
        if layer.strip().lower() == "middle":
            return num_layers // 2
        try:
            layer = int(layer)
        except ValueError:
            raise ConfigError(f"invalid feature layer {layer!r}: expected 'middle' or an integer") from None
    return max(0, min(num_layers, int(layer)))


def make_head(feature_dim: int, hidden: int, num_classes: int) -> nn.Sequential:
    """LayerNorm -> Linear(d, hidden) -> GELU -> Linear(hidden, C); C = 1 for the binary variant.
    Indices 0, 1, 3 match the reference checkpoint keys ``head.0.*``, ``head.1.*``, ``head.3.*``."""
    out = 1 if num_classes == 2 else num_classes
    return nn.Sequential(nn.LayerNorm(feature_dim), nn.Linear(feature_dim, hidden), nn.GELU(), nn.Linear(hidden, out))


def masked_mean_pool(
    hidden: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor, image_token_id: int
) -> torch.Tensor:
    """Mean over attended non-``<image>`` positions; rows with none fall back to all attended ones."""
    attended = attention_mask == 1
    text = (input_ids != image_token_id) & attended
    use = torch.where(text.any(dim=1, keepdim=True), text, attended)
    lengths = use.sum(dim=1, keepdim=True).clamp(min=1)
    return (hidden.float() * use.unsqueeze(-1)).sum(dim=1) / lengths


def _idefics3_inner(model: nn.Module) -> Any:  # a transformers module: its submodules and config are untyped
    inner = getattr(model, "model", model)
    if not hasattr(inner, "text_model") or not hasattr(inner, "vision_model"):
        raise ConfigError(f"{type(model).__name__} is not an Idefics3-architecture model")
    return inner


class FeatureBackbone(nn.Module):
    """A truncated Idefics3 model returning pooled features of hidden state ``layer``
    (or the mean over hidden states ``[layer - window, layer + window]``)."""

    def __init__(self, model: nn.Module, layer: int | str = "middle", window: int = 0) -> None:
        super().__init__()
        inner = _idefics3_inner(model)
        text = inner.text_model
        num_layers = len(text.layers)
        self.layer = resolve_layer(layer, num_layers)
        self.window = max(0, int(window))
        self.low = max(0, self.layer - self.window)
        self.high = min(num_layers, self.layer + self.window)
        text.layers = text.layers[: self.high]
        if self.high < num_layers:
            text.norm = nn.Identity()
        self.model = inner
        self.image_token_id = int(inner.config.image_token_id)
        self.feature_dim = int(inner.config.text_config.hidden_size)
        self.requires_grad_(False)
        self.eval()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pixel_values: torch.Tensor,
        pixel_attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        embeds = self.model.text_model.get_input_embeddings()(input_ids)
        images = self.image_features(pixel_values, pixel_attention_mask).to(dtype=self.model.dtype)
        out = self.model.text_model(  # what Idefics3Model.forward does once it has the image features
            inputs_embeds=self.model.inputs_merger(input_ids, embeds, images),
            attention_mask=attention_mask,
            use_cache=False,
            output_hidden_states=self.window > 0,
        )
        if self.window > 0:
            hidden = torch.stack(out.hidden_states[self.low : self.high + 1], dim=0).mean(dim=0)
        else:
            hidden = out.last_hidden_state
        return masked_mean_pool(hidden, input_ids, attention_mask, self.image_token_id)

    def image_features(
        self, pixel_values: torch.Tensor, pixel_attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The connector's outputs for the real views of (batch, views, 3, H, W) pixels: Idefics3's
        ``get_image_features``. With a pixel mask (a processor's padded images) it is transformers' own;
        without one (whole tiles: the gate's own preprocessing) it skips that function's two scans of
        every pixel (all-zero padding views, an all-ones pixel mask), which cost more than a tiny
        backbone's forward: only views whose first value is 0 are checked whole."""
        if pixel_attention_mask is not None:
            return cast(
                torch.Tensor,
                self.model.get_image_features(pixel_values, pixel_attention_mask, return_dict=True).pooler_output,
            )
        views = pixel_values.flatten(0, 1).to(self.model.dtype)
        maybe = torch.nonzero(views[:, 0, 0, 0] == 0).flatten()
        if len(maybe):
            real = torch.ones(len(views), dtype=torch.bool, device=views.device)
            real[maybe] = views[maybe].flatten(1).ne(0).any(dim=1)
            views = views[real]
        return cast(torch.Tensor, self.model.connector(self.model.vision_model(pixel_values=views).last_hidden_state))


@dataclass
class ResGateOutput(ModelOutput):
    logits: torch.Tensor | None = None
    features: torch.Tensor | None = None


class ResGateModel(nn.Module):
    """Backbone features + head. Registered with ``AutoModel`` for ``model_type == "resgate"``, so
    ``AutoModel.from_pretrained(gate_dir)`` returns one; calling it on the processor's outputs
    gives ``.logits`` of shape (batch, classes) (batch, 1 for the binary variant)."""

    config_class = ResGateConfig

    def __init__(self, config: ResGateConfig, backbone: FeatureBackbone, head: nn.Sequential) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.head = head

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pixel_values: torch.Tensor,
        pixel_attention_mask: torch.Tensor | None = None,
        **_: Any,
    ) -> ResGateOutput:
        features = self.backbone(input_ids, attention_mask, pixel_values, pixel_attention_mask)
        head_dtype = next(self.head.parameters()).dtype
        return ResGateOutput(logits=self.head(features.to(head_dtype)).float(), features=features)

    @classmethod
    def from_pretrained(cls, path: str, *args: Any, config: Any = None, **kwargs: Any) -> ResGateModel:
        """Load through :meth:`SmolVLMGate.from_pretrained` (so ``AutoModel`` works on gate dirs)."""
        from .smolvlm import SmolVLMGate

        allowed = {k: kwargs[k] for k in ("backbone", "profile", "device", "dtype") if k in kwargs}
        if "torch_dtype" in kwargs and "dtype" not in allowed:
            allowed["dtype"] = kwargs["torch_dtype"]
        return SmolVLMGate.from_pretrained(path, **allowed).model


AutoConfig.register(ResGateConfig.model_type, ResGateConfig, exist_ok=True)
AutoModel.register(ResGateConfig, ResGateModel, exist_ok=True)
