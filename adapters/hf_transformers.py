"""``HFAdapter``: a transformers model + processor in this process.

Applies the family's processor kwargs per request (e.g. ``size.longest_edge`` for Idefics3), batches
requests that share them into one padded ``generate`` call (left padding), greedy unless the request
sets ``temperature > 0``; ``top_p``, ``top_k``, ``seed`` and ``max_tokens`` pass through.
"""

from __future__ import annotations

from typing import Any

from .._extras import require
from ._conversation import max_new_tokens, run_grouped, to_hf_conversation
from .base import Adapter
from .models import ChatResponse

__all__ = ["HFAdapter"]


class HFAdapter(Adapter):
    name = "hf"
    takes_images = True

    def __init__(
        self,
        model: Any,
        *,
        processor: Any = None,
        device: str | None = None,
        dtype: Any = None,
        max_new_tokens: int = 64,
    ) -> None:
        """``model``: a local directory or Hub id (loaded with ``from_pretrained``), or a loaded model
        (then pass ``processor``)."""
        require("hf", "torch", "transformers")
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
            self.model_id = str(model)
            dtype = dtype or (torch.bfloat16 if self.device.type == "cuda" else torch.float32)
            model = AutoModelForImageTextToText.from_pretrained(self.model_id, dtype=dtype)
            processor = processor or AutoProcessor.from_pretrained(self.model_id)  # type: ignore[no-untyped-call]
        else:
            self.model_id = getattr(model, "name_or_path", type(model).__name__)
        if processor is None:
            raise ValueError("pass processor= together with a loaded model")
        self.model = model.to(self.device).eval()
        self.processor = processor
        self.processor.tokenizer.padding_side = "left"  # generation continues on the right
        self.default_max_new_tokens = max_new_tokens

    def complete(self, request: dict[str, Any], *, processor_kwargs: dict[str, Any]) -> ChatResponse:
        return self.complete_batch([request], [processor_kwargs])[0]

    def complete_batch(
        self, requests: list[dict[str, Any]], processor_kwargs: list[dict[str, Any]]
    ) -> list[ChatResponse]:
        """One ``generate`` call per group of requests sharing processor kwargs and sampling settings."""
        keys = [{"kw": kw, "sampling": self._sampling(r)} for r, kw in zip(requests, processor_kwargs)]
        return run_grouped(
            keys,
            lambda indices: self._generate(
                [requests[i] for i in indices], keys[indices[0]]["kw"], keys[indices[0]]["sampling"]
            ),
        )

    def _sampling(self, request: dict[str, Any]) -> dict[str, Any]:
        temperature = float(request.get("temperature") or 0.0)
        sampling: dict[str, Any] = {
            "do_sample": temperature > 0,
            "max_new_tokens": max_new_tokens(request, self.default_max_new_tokens),
        }
        if temperature > 0:
            sampling.update(
                temperature=temperature, **{k: request[k] for k in ("top_p", "top_k") if request.get(k) is not None}
            )
        if request.get("seed") is not None:
            sampling["seed"] = int(request["seed"])
        return sampling

    def _generate(
        self, requests: list[dict[str, Any]], kwargs: dict[str, Any], sampling: dict[str, Any]
    ) -> list[ChatResponse]:
        import torch

        prompts, images = [], []
        for request in requests:
            messages, pictures = to_hf_conversation(request)
            prompts.append(self.processor.apply_chat_template(messages, add_generation_prompt=True))
            images.append(pictures)
        inputs = self.processor(
            text=prompts, images=images if any(images) else None, padding=True, return_tensors="pt", **kwargs
        ).to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        options = dict(sampling)
        seed = options.pop("seed", None)
        if seed is not None:
            torch.manual_seed(seed)
        pad = self.processor.tokenizer.pad_token_id
        with torch.inference_mode():
            output = self.model.generate(**inputs, pad_token_id=pad, **options)
        prompt_lengths = inputs["attention_mask"].sum(dim=1).tolist()
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        responses = []
        for row, prompt_tokens in zip(new_tokens, prompt_lengths):
            eos = self.model.generation_config.eos_token_id
            eos_ids = set(eos if isinstance(eos, list) else [eos]) | {pad}
            ids = row.tolist()
            length = next((i + 1 for i, t in enumerate(ids) if t in eos_ids), len(ids))
            finish = "stop" if length < len(ids) or (ids and ids[length - 1] in eos_ids) else "length"
            text = self.processor.tokenizer.decode(ids[:length], skip_special_tokens=True)
            responses.append(ChatResponse.from_text(self.model_id, text, finish, int(prompt_tokens), length))
        return responses
