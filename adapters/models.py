"""Response models close to OpenAI chat completions (unknown fields are kept, so an upstream's
answer passes through intact; ``model_dump()`` gives it back)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import UpstreamProtocolError

__all__ = ["ChatRequest", "Usage", "ChatResponse"]


class ChatRequest(BaseModel):
    """The parts of a chat-completions request the adapters rely on; other fields pass through."""

    model_config = ConfigDict(extra="allow")
    model: str | None = None
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0)


class Usage(BaseModel):
    """``prompt_tokens`` includes the expanded image tokens (vLLM and HFAdapter count them)."""

    model_config = ConfigDict(extra="allow")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str = ""
    object: str = "chat.completion"
    created: int = 0
    model: str | None = None
    choices: list[dict[str, Any]] = Field(default_factory=list)
    usage: Usage | None = None

    @classmethod
    def from_text(
        cls, model: str | None, text: str, finish_reason: str | None, prompt_tokens: int, completion_tokens: int
    ) -> ChatResponse:
        """A one-choice completion, as in-process engines produce it."""
        import time
        import uuid

        return cls(
            id=f"chatcmpl-{uuid.uuid4().hex[:20]}",
            created=int(time.time()),
            model=model,
            choices=[{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}],
            usage=Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            ),
        )

    @property
    def text(self) -> str:
        """The first choice's message text (content parts joined; "" for an empty answer). A
        completion without a message is the upstream's fault: :class:`UpstreamProtocolError`."""
        message = self.choices[0].get("message") if self.choices else None
        if not isinstance(message, dict):
            raise UpstreamProtocolError(f"the completion has no message: {str(self.choices)[:200]}")
        content = message.get("content")
        if isinstance(content, list):  # content parts
            content = "".join(part.get("text") or "" for part in content if isinstance(part, dict))
        return content if isinstance(content, str) else ""
