"""``GatedLLM``: a drop-in for an offline ``vllm.LLM`` whose ``chat`` and ``generate`` gate the images
first (one batched gate call per call, whatever the number of prompts), then run the engine with the
resized images and, per prompt, the family's processor settings. Everything else passes through.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from .adapters._conversation import run_grouped
from .messages import to_wire
from .router import Router

__all__ = ["GatedLLM"]


def _detect_model(llm: Any) -> str | None:
    try:
        return cast("str | None", llm.llm_engine.model_config.model)
    except AttributeError:
        return None


class GatedLLM:
    def __init__(self, llm: Any, gate: Any = None, *, router: Router | None = None, **router_options: Any) -> None:
        """``router`` or ``gate`` (+ Router options such as ``family``, ``ladder``, ``log``). The family
        is detected from the engine's model directory when not given."""
        self.llm = llm
        if router is None:
            router_options.setdefault("model", _detect_model(llm))
            router_options.setdefault("encode_images", False)  # the engine takes the PIL images
            router = Router(gate, **router_options)
        self.router = router

    def __getattr__(self, name: str) -> Any:
        return getattr(self.llm, name)

    def _route_all(self, requests: list[dict[str, Any]]) -> list[Any]:
        """One batched routing of every prompt; when one fails (as the router's settings ask), none is
        sent and each still gets its one record."""
        routed = self.router.route_batch(requests, return_exceptions=True)
        failed = next((r for r in routed if isinstance(r, Exception)), None)
        if failed is None:
            return routed
        for request, result in zip(requests, routed):
            if isinstance(result, Exception):
                self.router.record_rejected(request, result)
            else:
                self.router.record_error(result.record, failed)
        raise failed

    def chat(
        self,
        messages: Sequence[Any],
        sampling_params: Any = None,
        *args: Any,
        mm_processor_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Any]:
        """``vllm.LLM.chat``: one conversation or a list of them."""
        single = bool(messages) and isinstance(messages[0], dict)
        conversations = [list(messages)] if single else [list(c) for c in messages]
        routed = self._route_all([{"messages": c} for c in conversations])

        def run(indices: list[int]) -> list[Any]:  # one engine call per set of processor settings
            merged = {**(mm_processor_kwargs or {}), **routed[indices[0]].processor_kwargs} or None
            params = [sampling_params[i] for i in indices] if isinstance(sampling_params, list) else sampling_params
            batch = [to_wire(routed[i].request, pil_parts=True)["messages"] for i in indices]
            return cast(list[Any], self.llm.chat(batch, params, *args, mm_processor_kwargs=merged, **kwargs))

        with self.router.recorded(*(item.record for item in routed)):  # one engine call (or a few) for all
            outputs: list[Any] = run_grouped([item.processor_kwargs for item in routed], run)
        return outputs

    def generate(self, prompts: Any, sampling_params: Any = None, *args: Any, **kwargs: Any) -> list[Any]:
        """``vllm.LLM.generate``: prompt dicts with ``multi_modal_data["image"]`` are gated and resized,
        and get the routed ``mm_processor_kwargs`` (merged over their own)."""
        items = [prompts] if isinstance(prompts, (str, dict)) else list(prompts)
        requests = []
        for item in items:
            images = (item.get("multi_modal_data") or {}).get("image") if isinstance(item, dict) else None
            images = [] if images is None else images if isinstance(images, list) else [images]
            text = item.get("prompt", "") if isinstance(item, dict) else str(item)
            parts = [{"type": "image", "image": image} for image in images] + [{"type": "text", "text": text}]
            requests.append({"messages": [{"role": "user", "content": parts}]})
        routed = self._route_all(requests)
        rewritten = []
        for item, result in zip(items, routed):
            if not isinstance(item, dict) or result.record.status == "passthrough":
                rewritten.append(item)
                continue
            images = [p["image"] for p in result.request["messages"][0]["content"] if p.get("type") == "image"]
            original = item["multi_modal_data"]["image"]
            data = {**item["multi_modal_data"], "image": images if isinstance(original, list) else images[0]}
            kw = {**(item.get("mm_processor_kwargs") or {}), **result.processor_kwargs}
            rewritten.append({**item, "multi_modal_data": data, **({"mm_processor_kwargs": kw} if kw else {})})
        single = len(rewritten) == 1 and isinstance(prompts, (str, dict))
        with self.router.recorded(*(item.record for item in routed)):
            outputs: list[Any] = self.llm.generate(
                rewritten[0] if single else rewritten, sampling_params, *args, **kwargs
            )
        return outputs
