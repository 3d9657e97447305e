"""The gate's model at fixed shapes, compiled (``SmolVLMGate(compile=True)``).

A batch is padded to the next batch-size bucket (powers of two, up to the gate's ``batch_size``) and
its prompts to a multiple of :data:`TOKEN_STEP` tokens, so each (bucket, length) compiles once
(``dynamic=False``); on CUDA the compiled graphs replay as CUDA graphs (``mode="reduce-overhead"``).
Padded rows repeat the first row and are dropped. Padded tokens are masked and come after every real
token, so under causal attention the real tokens' features do not change.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

__all__ = ["CompiledRunner", "TOKEN_STEP", "bucket"]

TOKEN_STEP = 64


def bucket(size: int, largest: int) -> int:
    """The smallest power of two >= ``size``, or ``largest`` (the gate's batch size) past it."""
    power = 1 << max(0, size - 1).bit_length()
    return min(power, max(largest, size))


class CompiledRunner:
    """Calls ``model`` (a :class:`ResGateModel`) on a prepared batch through ``torch.compile``;
    returns the logits of the real rows."""

    def __init__(self, model: nn.Module, batch_size: int, pad_id: int, mode: str | None = None) -> None:
        device = next(model.parameters()).device
        self.mode = mode or ("reduce-overhead" if device.type == "cuda" else "default")
        self.model, self.batch_size = model, batch_size
        self.compiled = torch.compile(model, dynamic=False, mode=self.mode)
        self.pad_id = pad_id  # the tokenizer's, as the uncompiled batches are padded

    def pad(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The batch at its bucket's shape."""
        rows, length = batch["input_ids"].shape
        extra_rows = bucket(rows, self.batch_size) - rows
        extra_tokens = -length % TOKEN_STEP
        ids = nn.functional.pad(batch["input_ids"], (0, extra_tokens), value=self.pad_id)
        mask = nn.functional.pad(batch["attention_mask"], (0, extra_tokens), value=0)
        padded: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "pixel_values": batch["pixel_values"]}
        if extra_rows:
            padded = {k: torch.cat([v, v[:1].expand(extra_rows, *v.shape[1:])]) for k, v in padded.items()}
        return padded

    @torch.inference_mode()
    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        rows = batch["input_ids"].shape[0]
        return cast(torch.Tensor, self.compiled(**self.pad(batch)).logits[:rows].clone())
