"""In-process adapters on the tiny model: Hugging Face ``generate`` and an offline ``vllm.LLM``.

For each ladder class, the downstream's own prompt-token count moves exactly as the router's
accounting says; batched calls give the same answers as single ones.
"""

from __future__ import annotations

import pytest
from resgate_router.adapters import get_adapter_class

from resgate_router import Router
from resgate_router.messages import encode_data_url
from resgate_router.testing import make_document_image

PAGES = [make_document_image(1700, 2200, lines=40, seed=3), make_document_image(900, 600, lines=8, seed=4)]
CLASSES = ("low", "medium", "high")


def chat(page, question="What is the total amount?", **extra):
    content = [{"type": "image_url", "image_url": {"url": encode_data_url(page)}}, {"type": "text", "text": question}]
    return {"model": "tiny", "messages": [{"role": "user", "content": content}], "max_tokens": 4, **extra}


@pytest.fixture(scope="module")
def hf_adapter(tiny_backbone):
    return get_adapter_class("hf")(tiny_backbone, device="cpu")


@pytest.fixture(scope="module")
def vllm_adapter(vllm_llm):
    return get_adapter_class("vllm")(vllm_llm)


@pytest.fixture(params=["hf", "vllm"])
def adapter(request):
    return request.getfixturevalue(f"{request.param}_adapter")


def test_prompt_tokens_equal_the_accounting_for_every_class(adapter, tiny_gate, tiny_backbone):
    router = Router(tiny_gate, adapter, family="idefics3", model=tiny_backbone, metrics=False)
    for page in PAGES:
        baseline = adapter.complete(chat(page), processor_kwargs={}).usage.prompt_tokens
        for name in CLASSES:
            result = router.complete(chat(page), override=name)
            assert (
                result.response.usage.prompt_tokens - baseline
                == result.record.routed_tokens - result.record.baseline_tokens
            )
            assert 1 <= result.response.usage.completion_tokens <= 4 and isinstance(result.response.text, str)


def test_batch_equals_single(adapter):
    requests = [chat(PAGES[0]), chat(PAGES[1], "Date?"), chat(PAGES[0], "Who signed?")]
    kwargs = [{"size": {"longest_edge": 512}}, {"size": {"longest_edge": 512}}, {}]
    batched = adapter.complete_batch(requests, kwargs)
    for request, kw, response in zip(requests, kwargs, batched):
        single = adapter.complete(request, processor_kwargs=kw)
        assert single.usage.prompt_tokens == response.usage.prompt_tokens
        assert single.text == response.text  # greedy


def test_hf_generates_real_tokens_and_reports_usage(hf_adapter):
    response = hf_adapter.complete(chat(PAGES[1], max_tokens=6), processor_kwargs={"size": {"longest_edge": 512}})
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens
    assert response.choices[0]["finish_reason"] in ("stop", "length") and response.usage.completion_tokens >= 1
    plain = hf_adapter.complete(
        {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 3}, processor_kwargs={}
    )
    assert plain.usage.prompt_tokens > 0
