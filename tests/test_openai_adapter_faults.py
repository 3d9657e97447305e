"""OpenAIAdapter against real loopback servers that fail in every way a real server can."""

from __future__ import annotations

import asyncio
import socket

import httpx2
import pytest
from resgate_router.adapters.openai_http import AsyncOpenAIAdapter, OpenAIAdapter, safe_processor_kwargs

from resgate_router import (
    UpstreamConnectionError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
)

from .upstreams import FaultServer

REQUEST = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def server():
    fault = FaultServer()
    yield fault
    fault.stop()


@pytest.fixture()
def adapter(server):
    """Build adapters for a scenario; all are closed after the test (no leaked sockets)."""
    made = []

    def make(scenario, **options):
        made.append(OpenAIAdapter(server.url(scenario), **{"backoff": 0.05, **options}))
        return made[-1]

    yield make
    for client in made:
        client.close()


def test_ok_and_usage(server, adapter):
    response = adapter("ok").complete(REQUEST, processor_kwargs={"size": {"longest_edge": 512}})
    assert response.text == "ok" and response.usage.prompt_tokens == 5
    assert server.bodies[-1]["mm_processor_kwargs"] == {"size": {"longest_edge": 512}}
    assert response.model_dump()["choices"][0]["finish_reason"] == "stop"


def test_retries_500_then_succeeds(server, adapter):
    before = server.calls["flaky500"]
    assert adapter("flaky500").complete(REQUEST, processor_kwargs={}).text == "ok"
    assert server.calls["flaky500"] - before == 2


def test_honours_retry_after(server, adapter):
    start = len(server.times)
    assert adapter("retry429").complete(REQUEST, processor_kwargs={}).text == "ok"
    first, second = server.times[start], server.times[start + 1]
    assert second - first >= 0.28  # Retry-After: 0.3, not the 0.05 s backoff


def test_gives_up_after_retries_on_503(server, adapter):
    before = server.calls["always503"]
    with pytest.raises(UpstreamStatusError) as info:
        adapter("always503", max_retries=2).complete(REQUEST, processor_kwargs={})
    assert info.value.status_code == 503 and server.calls["always503"] - before == 3


def test_4xx_is_not_retried(server, adapter):
    before = server.calls["bad400"]
    with pytest.raises(UpstreamStatusError, match="400"):
        adapter("bad400").complete(REQUEST, processor_kwargs={})
    assert server.calls["bad400"] - before == 1


def test_malformed_json(server, adapter):
    with pytest.raises(UpstreamProtocolError):
        adapter("badjson").complete(REQUEST, processor_kwargs={})


def test_stall_times_out(server, adapter):
    with pytest.raises(UpstreamTimeout):
        adapter("stall", timeout=0.5).complete(REQUEST, processor_kwargs={})


def test_reset_connection(server, adapter):
    with pytest.raises(UpstreamConnectionError):
        adapter("reset", max_retries=1).complete(REQUEST, processor_kwargs={})


def test_refused_connection():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        with OpenAIAdapter(f"http://127.0.0.1:{port}/v1", max_retries=1, backoff=0.01) as client:
            with pytest.raises(UpstreamConnectionError):
                client.complete(REQUEST, processor_kwargs={})


def test_stream_chunk_by_chunk_and_cut_stream(server, adapter):
    chunks = list(adapter("stream").stream(REQUEST, processor_kwargs={}))
    assert [c["choices"][0]["delta"]["content"] for c in chunks] == ["t0", "t1", "t2"]
    received = []
    with pytest.raises(UpstreamProtocolError, match="DONE"):
        for chunk in adapter("cutstream").stream(REQUEST, processor_kwargs={}):
            received.append(chunk)
    assert len(received) == 3  # what arrived was passed on before the failure


def test_async_twin(server):
    async def run():
        clients = [
            AsyncOpenAIAdapter(server.url(s), backoff=0.05, timeout=0.5) for s in ("flaky500", "stream", "stall")
        ]
        try:
            response = await clients[0].acomplete(REQUEST, processor_kwargs={})
            chunks = [c async for c in clients[1].astream(REQUEST, processor_kwargs={})]
            with pytest.raises(UpstreamTimeout):
                await clients[2].acomplete(REQUEST, processor_kwargs={})
            return response, chunks
        finally:
            for client in clients:
                await client.aclose()

    response, chunks = asyncio.run(run())
    assert response.text == "ok" and len(chunks) == 3


def test_a_callers_own_http_client_is_used(server):
    headers = {"x-caller": "own client"}
    with httpx2.Client(headers=headers) as client:
        adapter = OpenAIAdapter(server.url("ok"), http_client=client)
        assert adapter.client is client
        assert adapter.complete(REQUEST, processor_kwargs={}).text == "ok"
    assert {k.lower(): v for k, v in server.headers[-1].items()}["x-caller"] == "own client"


def test_an_http_client_of_the_wrong_kind_is_a_clear_error():
    """httpx (which this adapter used before httpx2) raises exceptions the adapter's error mapping
    does not know, so its clients are refused up front; so is a sync client for the async adapter."""
    import httpx

    with httpx.Client() as old, pytest.raises(TypeError, match=r"must be an httpx2\.Client, got httpx\.Client"):
        OpenAIAdapter("http://127.0.0.1:9/v1", http_client=old)
    with httpx2.Client() as sync, pytest.raises(TypeError, match=r"httpx2\.AsyncClient, got httpx2\.Client"):
        AsyncOpenAIAdapter("http://127.0.0.1:9/v1", http_client=sync)


def test_only_validated_processor_kwargs_are_sent(server, adapter, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    client = adapter("ok")
    request = {**REQUEST, "mm_processor_kwargs": {"do_resize": False}}
    client.complete(request, processor_kwargs={"size": {"longest_edge": 512, "crop": True}, "do_resize": False})
    assert server.bodies[-1]["mm_processor_kwargs"] == {"size": {"longest_edge": 512}}
    assert "sk-secret-value" not in repr(client)
    assert safe_processor_kwargs({"size": {"longest_edge": "512"}, "max_patches": 4}) == {"max_patches": 4}
    assert safe_processor_kwargs({"size": {"longest_edge": True}}) == {}
    off = adapter("ok", send_processor_kwargs=False)
    off.complete(REQUEST, processor_kwargs={"size": {"longest_edge": 512}})
    assert "mm_processor_kwargs" not in server.bodies[-1]


def test_adapter_registry():
    from resgate_router.adapters import available_adapters, get_adapter_class

    from resgate_router import AdapterNotFoundError

    assert get_adapter_class("openai") is OpenAIAdapter and get_adapter_class("openai-async") is AsyncOpenAIAdapter
    with pytest.raises(AdapterNotFoundError, match="openai"):
        get_adapter_class("nope")
    assert {"openai", "openai-async"} <= set(available_adapters())


@pytest.mark.parametrize(
    "bad",
    [
        {"messages": []},
        {"messages": "hi"},
        {"messages": [{"role": "user"}], "max_tokens": 0},
        {"messages": [{"role": "user", "content": "x"}], "temperature": -1},
    ],
)
def test_invalid_requests_are_refused_before_sending(server, adapter, bad):
    from resgate_router import InputError

    before = len(server.bodies)
    with pytest.raises(InputError):
        adapter("ok").complete(bad, processor_kwargs={})
    assert len(server.bodies) == before
