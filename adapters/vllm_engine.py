"""``VLLMAdapter``: a ``vllm.LLM`` engine in this process.

Requests sharing processor kwargs and sampling settings go to the engine in one ``LLM.chat`` call
(vLLM batches them); each group gets its own ``mm_processor_kwargs`` (validated sizes only).
"""

from __future__ import annotations

from typing import Any

from ..messages import to_wire
from ._conversation import max_new_tokens, run_grouped
from .base import Adapter
from .models import ChatResponse
from .openai_http import safe_processor_kwargs

__all__ = ["VLLMAdapter"]


class VLLMAdapter(Adapter):
    name = "vllm"
    takes_images = True

    def __init__(self, llm: Any, *, max_new_tokens: int = 64) -> None:
        self.llm = llm
        self.default_max_new_tokens = max_new_tokens

    def _sampling(self, request: dict[str, Any]) -> dict[str, Any]:
        keys = ("temperature", "top_p", "top_k", "seed", "stop", "presence_penalty", "frequency_penalty")
        options = {k: request[k] for k in keys if request.get(k) is not None}
        options.setdefault("temperature", 0.0)
        options["max_tokens"] = max_new_tokens(request, self.default_max_new_tokens)
        return options

    def complete(self, request: dict[str, Any], *, processor_kwargs: dict[str, Any]) -> ChatResponse:
        return self.complete_batch([request], [processor_kwargs])[0]

    def complete_batch(
        self, requests: list[dict[str, Any]], processor_kwargs: list[dict[str, Any]]
    ) -> list[ChatResponse]:
        """One ``LLM.chat`` call per group of requests sharing processor kwargs and sampling settings."""
        from vllm import SamplingParams

        keys = [
            {"kw": safe_processor_kwargs(kw), "sampling": self._sampling(r)}
            for r, kw in zip(requests, processor_kwargs)
        ]

        def run(indices: list[int]) -> list[ChatResponse]:
            first = keys[indices[0]]
            conversations = [to_wire(requests[i], pil_parts=True)["messages"] for i in indices]
            outputs = self.llm.chat(
                conversations,
                SamplingParams(**first["sampling"]),
                use_tqdm=False,
                mm_processor_kwargs=first["kw"] or None,
            )
            return [
                ChatResponse.from_text(
                    requests[i].get("model"),
                    out.outputs[0].text,
                    out.outputs[0].finish_reason,
                    len(out.prompt_token_ids),
                    len(out.outputs[0].token_ids),
                )
                for i, out in zip(indices, outputs)
            ]

        return run_grouped(keys, run)
