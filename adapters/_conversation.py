"""Shared helpers for in-process adapters: OpenAI messages to a transformers conversation, sampling."""

from __future__ import annotations

import json
from typing import Any

from ..messages import find_images

__all__ = ["to_hf_conversation", "group_by_kwargs", "max_new_tokens"]


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


def group_by_kwargs(kwargs_list: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Indices of requests sharing the same processor kwargs (one engine/processor call each)."""
    groups: dict[str, list[int]] = {}
    for index, kwargs in enumerate(kwargs_list):
        groups.setdefault(json.dumps(kwargs, sort_keys=True), []).append(index)
    return groups


def max_new_tokens(request: dict[str, Any], default: int) -> int:
    value = request.get("max_completion_tokens") or request.get("max_tokens") or default
    return max(1, int(value))
