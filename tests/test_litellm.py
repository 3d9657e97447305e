"""The resgate hook inside a real LiteLLM proxy (``litellm --config``) in front of the real vLLM CPU
server (tiny model), driven by the official ``openai`` client, unchanged."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import httpx2
import openai
import pytest
import yaml

from resgate_router import Router
from resgate_router.messages import encode_data_url
from resgate_router.testing import make_document_image
from resgate_router.tools.servers import litellm_proxy

from .badimages import png_with_header_size
from .logs import RECORD_FIELDS, read_records
from .upstreams import Trap

MODEL = "tiny-smolvlm"
OTHER = "not-gated"  # another model of the same proxy, left out of RESGATE_LITELLM_MODELS
KEY = "sk-resgate-test-0123456789abcdef0123456789abcdef"  # LiteLLM refuses to start without a master key
PAGE = make_document_image(1700, 2200, lines=40, seed=3)
CALLBACK = "resgate_router.integrations.litellm.proxy_handler_instance"


def chat(url: str, **extra):
    content = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "What is the total amount?"}]
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": 2, **extra}


def config(vllm_url: str) -> dict:
    """The README's ``config.yaml``, as a user copies it, with the test's model and master key."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (block,) = re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)
    settings = yaml.safe_load(block)
    assert settings["litellm_settings"]["callbacks"] == CALLBACK
    (model,) = settings["model_list"]
    model["model_name"] = MODEL
    model["litellm_params"].update(model=f"hosted_vllm/{MODEL}", api_base=vllm_url)
    settings["general_settings"]["master_key"] = KEY
    return settings


def direct_prompt_tokens(vllm_url: str, request: dict) -> int:
    """vLLM's prompt tokens for ``request`` sent to it directly (the baseline)."""
    with openai.OpenAI(base_url=vllm_url, api_key="unused", max_retries=0) as plain:
        return plain.chat.completions.create(**request).usage.prompt_tokens


@pytest.fixture(scope="module")
def proxy(vllm_server, tiny_backbone, tiny_gate_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("litellm")
    settings = config(vllm_server)  # plus a second model on the same server, not gated
    settings["model_list"].append(
        {"model_name": OTHER, "litellm_params": {**settings["model_list"][0]["litellm_params"]}}
    )
    (folder / "config.yaml").write_text(yaml.safe_dump(settings))
    log = folder / "savings.jsonl"
    env = {
        "RESGATE_LITELLM_MODELS": MODEL,
        "RESGATE_GATE": str(tiny_gate_dir),
        "RESGATE_MODEL": str(tiny_backbone),
        "RESGATE_LOG_PATH": str(log),
        "RESGATE_DEVICE": "cpu",
    }
    with litellm_proxy(folder / "config.yaml", env=env) as url:
        client = openai.OpenAI(base_url=url, api_key=KEY, max_retries=0)
        yield client, log
        client.close()


def test_unchanged_openai_client_gets_routed_answers(proxy, vllm_server, tiny_gate, tiny_backbone):
    """The prompt tokens vLLM reports drop by exactly what the router accounted, for the gate's own
    decision and for each forced class (body field and header)."""
    client, log = proxy
    before = len(read_records(log, 0))
    request = chat(encode_data_url(PAGE))
    baseline = direct_prompt_tokens(vllm_server, request)
    router = Router(tiny_gate, family="idefics3", model=tiny_backbone, metrics=False)
    for override in (None, "low", "medium", "high"):
        extra = {"extra_body": {"resgate": override}} if override else {}
        reply = client.chat.completions.create(**request, **extra)
        expected = router.route(request, override=override).record
        assert isinstance(reply, openai.types.chat.ChatCompletion) and reply.choices
        assert reply.usage.prompt_tokens - baseline == expected.routed_tokens - expected.baseline_tokens, override
    forced = client.chat.completions.create(**request, extra_headers={"X-Resgate-Resolution": "low"})
    assert baseline - forced.usage.prompt_tokens == router.route(request, override="low").record.saved_tokens
    records = read_records(log, before + 5)[before:]
    assert len(records) == 5 and all(set(r) == RECORD_FIELDS for r in records), records
    assert [r["images"][0]["source"] for r in records] == ["gate"] + ["override"] * 4
    assert all(r["status"] == "routed" and r["downstream_ms"] > 0 for r in records), records


def test_streaming_is_routed_and_recorded_when_it_ends(proxy):
    client, log = proxy
    before = len(read_records(log, 0))
    stream = client.chat.completions.create(
        **chat(encode_data_url(PAGE), max_tokens=4), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks and all(isinstance(c, openai.types.chat.ChatCompletionChunk) for c in chunks)
    record = read_records(log, before + 1)[before]
    assert record["status"] == "routed" and record["saved_tokens"] > 0 and record["downstream_ms"] > 0
    usage = [c.usage for c in chunks if c.usage is not None]
    assert usage and usage[-1].prompt_tokens < record["baseline_tokens"]  # vLLM saw the routed image


@pytest.mark.parametrize("case", ["bad-base64", "not-an-image", "bomb", "file-url", "loopback-url"])
def test_bad_images_are_a_400_and_the_proxy_stays_up(proxy, case):
    client, log = proxy
    before = len(read_records(log, 0))
    trap = Trap("127.0.0.1")
    bomb = "data:image/png;base64," + base64.b64encode(png_with_header_size(60000, 60000)).decode()
    url = {
        "bad-base64": "data:image/png;base64,@@@",
        "not-an-image": "data:image/png;base64," + base64.b64encode(b"plain text").decode(),
        "bomb": bomb,
        "file-url": "file:///etc/passwd",
        "loopback-url": trap.url(),
    }[case]
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(**chat(url))
    assert refused.value.status_code == 400 and "Error" in str(refused.value.message)
    assert not trap.connected()  # nobody (LiteLLM, vLLM) fetched the refused URL
    trap.close()
    assert client.chat.completions.create(**chat(encode_data_url(PAGE))).choices  # still up
    records = read_records(log, before + 2)[before:]
    assert [r["status"] for r in records] == ["error", "routed"], records  # one record per request


def test_models_left_out_of_the_list_pass_untouched(proxy, vllm_server):
    client, log = proxy
    before = len(read_records(log, 0))
    request = chat(encode_data_url(PAGE))
    baseline = direct_prompt_tokens(vllm_server, request)
    reply = client.chat.completions.create(**{**request, "model": OTHER}, extra_body={"resgate": "low"})
    assert reply.usage.prompt_tokens == baseline  # not resized, no processor kwargs, the override ignored
    gated = client.chat.completions.create(**request)
    assert gated.usage.prompt_tokens < baseline
    records = read_records(log, before + 1)
    assert len(records) == before + 1 and records[-1]["model"] == MODEL  # only the gated request


def test_a_failure_after_routing_is_the_requests_one_record(proxy):
    """vLLM refuses max_tokens past the context: LiteLLM's 400, recorded with the routed tokens."""
    client, log = proxy
    before = len(read_records(log, 0))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(**chat(encode_data_url(PAGE), max_tokens=100_000))
    text_only = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert text_only.choices
    records = read_records(log, before + 2)[before:]
    assert [r["status"] for r in records] == ["error", "passthrough"], records
    assert records[0]["routed_tokens"] > 0 and records[0]["error"], records


def test_urls_on_endpoints_the_hook_does_not_gate_are_checked_too(proxy):
    """/v1/responses carries image URLs LiteLLM or the provider would fetch: a loopback one is a 400."""
    client, _ = proxy
    trap = Trap("127.0.0.1")
    body = {
        "model": MODEL,
        "input": [{"role": "user", "content": [{"type": "input_image", "image_url": trap.url()}]}],
    }
    response = httpx2.post(
        str(client.base_url) + "responses", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
    )
    assert response.status_code == 400, response.text
    assert "non-public" in response.text
    assert not trap.connected()
    trap.close()


def test_the_callback_needs_a_gate(monkeypatch):
    from resgate_router.errors import ConfigError
    from resgate_router.integrations import litellm as hook

    monkeypatch.delitem(hook.__dict__, "proxy_handler_instance", raising=False)
    with pytest.raises(ConfigError, match="RESGATE_GATE"):
        hook.proxy_handler_instance  # noqa: B018  (what LiteLLM's config loader reads)


def test_a_gate_that_cannot_load_stops_the_proxy_at_start_up(vllm_server, tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config(vllm_server)))
    with pytest.raises(RuntimeError, match="LiteLLM proxy exited") as stopped:
        with litellm_proxy(tmp_path / "config.yaml", env={"RESGATE_GATE": str(tmp_path / "no-gate")}):
            pass
    assert "gate directory not found" in str(stopped.value)
