"""Shared helpers for in-process adapters: OpenAI messages to a transformers conversation, sampling."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ..messages import find_images

T = TypeVar("T")

__all__ = ["to_hf_conversation", "run_grouped", "max_new_tokens"]


def to_hf_conversation(request: dict[str, Any]) -> tuple[list[dict[str, Any]], list[Any]]:
    """(messages with ``{"type": "image"}`` placeholders and string content as text parts, images)."""
    refs = {(r.message, r.part): r for r in find_images(request)}
    messages, images = [], []
    for m_index, message in enumerate(request["messages"]):
        content = message.get("content")
        if isinstance(content, str) or content is None:
            parts = [{"type": "text", "text": content or ""}]
        else:
            parts = []
            for p_index, part in enumerate(content):
                ref = refs.get((m_index, p_index))
                if ref is None:
                    parts.append(part)
                elif ref.image is None:
                    raise ValueError(f"messages[{m_index}].content[{p_index}]: remote image URLs are not fetched")
                else:
                    parts.append({"type": "image"})
                    images.append(ref.image)
        messages.append({"role": message.get("role", "user"), "content": parts})
    return messages, images


def run_grouped(keys: Sequence[Any], run: Callable[[list[int]], Sequence[T]]) -> list[T]:
    """Call ``run`` once per group of indices whose keys (JSON-able settings: processor kwargs,
    sampling) are equal, so each group is one engine/processor call; results come back in input order."""
    groups: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(json.dumps(key, sort_keys=True), []).append(index)
    results: list[Any] = [None] * len(keys)
    for indices in groups.values():
        for index, result in zip(indices, run(indices)):
            results[index] = result
    return results


def max_new_tokens(request: dict[str, Any], default: int) -> int:
    value = request.get("max_completion_tokens") or request.get("max_tokens") or default
    return max(1, int(value))
