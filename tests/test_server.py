"""The proxy (``resgate serve``'s app) on a real loopback socket, in front of the real vLLM server and
of misbehaving loopback upstreams."""

from __future__ import annotations

import base64
import socket
import threading

import httpx2
import openai
import pytest

from resgate_router import AsyncRouter, Router
from resgate_router.messages import encode_data_url
from resgate_router.server import ServerSettings, create_app
from resgate_router.testing import make_document_image
from resgate_router.tools.servers import free_port, serve_app

from .badimages import png_with_header_size
from .logs import read_records
from .upstreams import LOOPBACK_TARGETS, FaultServer, Trap, url_requests

PAGE = make_document_image(1700, 2200, lines=40, seed=3)
MODEL = "tiny-smolvlm"


def serve(app):
    return serve_app(app)


def chat(image_url, question="What is the total amount?", **extra):
    content = [{"type": "image_url", "image_url": {"url": image_url}}, {"type": "text", "text": question}]
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": 2, **extra}


@pytest.fixture(scope="module")
def proxy(vllm_server, tiny_gate, tiny_backbone, tmp_path_factory):
    log = tmp_path_factory.mktemp("proxy") / "savings.jsonl"
    router = AsyncRouter(
        tiny_gate, family="idefics3", model=tiny_backbone, log=log, allow_local_paths=False, on_bad_input="raise"
    )
    app = create_app(ServerSettings(upstream=vllm_server), router=router)
    with serve(app) as url:
        yield url, router, log


def test_openai_client_through_the_proxy(proxy, vllm_server, tiny_gate, tiny_backbone):
    url, router, _ = proxy
    dry = Router(tiny_gate, family="idefics3", model=tiny_backbone, metrics=False)  # what the proxy should do
    direct = openai.OpenAI(base_url=vllm_server, api_key="unused", max_retries=0)
    gated = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    request = chat(encode_data_url(PAGE))
    baseline = direct.chat.completions.create(**request).usage.prompt_tokens
    for name in ("low", "medium", "high"):
        reply = gated.chat.completions.create(**request, extra_headers={"X-Resgate-Resolution": name})
        expected = dry.route(request, override=name).record
        assert reply.usage.prompt_tokens - baseline == expected.routed_tokens - expected.baseline_tokens
    chunks = list(gated.chat.completions.create(**request, stream=True, extra_headers={"X-Resgate-Resolution": "low"}))
    assert chunks and all(isinstance(c, openai.types.chat.ChatCompletionChunk) for c in chunks)
    assert [m.id for m in gated.models.list().data] == [MODEL]  # other paths pass through
    direct.close()
    gated.close()


def test_health_readiness_and_metrics(proxy):
    url, _, _ = proxy
    assert httpx2.get(f"{url}/healthz").json() == {"status": "ok"}
    ready = httpx2.get(f"{url}/readyz")
    assert ready.status_code == 200 and ready.json()["family"] == "idefics3"
    httpx2.post(
        f"{url}/v1/chat/completions",
        json=chat(encode_data_url(PAGE)),
        headers={"X-Resgate-Resolution": "low"},
        timeout=60,
    )
    assert "resgate_requests_total" in httpx2.get(f"{url}/metrics").text


@pytest.mark.parametrize(
    "case", ["bad-base64", "bomb", "file-url", "not-json", "not-object", "no-messages", "too-big", "bad-override"]
)
def test_client_errors_are_openai_4xx_and_the_server_stays_up(proxy, case):
    url, _, _ = proxy
    bomb = "data:image/png;base64," + base64.b64encode(png_with_header_size(60000, 60000)).decode()
    kwargs = {
        "bad-base64": {"json": chat("data:image/png;base64,@@@")},
        "bomb": {"json": chat(bomb)},
        "file-url": {"json": chat("file:///etc/passwd")},
        "not-json": {"content": b"{nope", "headers": {"content-type": "application/json"}},
        "not-object": {"json": [1, 2]},
        "no-messages": {"json": {"model": MODEL}},
        "too-big": {
            "content": b"{" + b" " * (33 * 1024 * 1024) + b"}",
            "headers": {"content-type": "application/json"},
        },
        "bad-override": {"json": chat(encode_data_url(PAGE)), "headers": {"X-Resgate-Resolution": "huge"}},
    }[case]
    response = httpx2.post(f"{url}/v1/chat/completions", timeout=60, **kwargs)
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    ok = httpx2.post(
        f"{url}/v1/chat/completions",
        json=chat(encode_data_url(PAGE)),
        timeout=60,
        headers={"X-Resgate-Resolution": "low"},
    )
    assert ok.status_code == 200


@pytest.fixture(scope="module")
def faults():
    server = FaultServer()
    yield server
    server.stop()


@pytest.mark.parametrize("scenario,status", [("ok", 200), ("always503", 502), ("stall", 504), ("bad400", 400)])
def test_upstream_failures_map_to_502_504_and_auth_is_forwarded(faults, tiny_gate, scenario, status):
    settings = ServerSettings(upstream=faults.url(scenario), upstream_timeout_s=0.5, upstream_retries=1)
    app = create_app(settings, router=AsyncRouter(tiny_gate, family="idefics3", metrics=False))
    with serve(app) as url:
        response = httpx2.post(
            f"{url}/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": "Bearer client-key"},
            timeout=30,
        )
    assert response.status_code == status, response.text
    if scenario == "ok":
        sent = {k.lower(): v for k, v in faults.headers[-1].items()}
        assert sent["authorization"] == "Bearer client-key"
    elif status >= 500:
        assert response.json()["error"]["type"] == "upstream_error"
    else:
        assert "bad request" in response.json()["error"]["message"]


def test_upstream_down_is_502(tiny_gate):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        settings = ServerSettings(upstream=f"http://127.0.0.1:{port}/v1", upstream_retries=0)
        with serve(create_app(settings, router=AsyncRouter(tiny_gate, family="idefics3", metrics=False))) as url:
            response = httpx2.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
            models = httpx2.get(f"{url}/v1/models")
            ready = httpx2.get(f"{url}/readyz")
    assert response.status_code == 502 and models.status_code == 502 and ready.status_code == 503


def test_settings_precedence_flags_env_file(tmp_path, monkeypatch):
    from resgate_router.server.settings import load_settings

    config = tmp_path / "proxy.json"
    config.write_text('{"upstream": "http://file/v1", "port": 9001, "gate_max_batch": 4, "family": "qwen2_vl"}')
    monkeypatch.setenv("RESGATE_PORT", "9002")
    monkeypatch.setenv("RESGATE_GATE_MAX_BATCH", "8")
    settings = load_settings(str(config), port=9003)
    assert (settings.upstream, settings.port, settings.gate_max_batch, settings.family) == (
        "http://file/v1",
        9003,
        8,
        "qwen2_vl",
    )


def test_serve_fails_at_start_up_when_the_gate_cannot_load(tmp_path, capsys):
    from resgate_router.cli import main

    assert main(["serve", "--upstream", "http://127.0.0.1:9/v1", "--gate", str(tmp_path / "no-gate")]) == 2
    err = capsys.readouterr().err
    assert "resgate serve: error:" in err and "no-gate" in err and "Traceback" not in err


class CountingGate:
    needs_pixels = True

    def __init__(self, gate) -> None:
        self.gate, self.ladder, self.class_names, self.calls = gate, gate.ladder, gate.class_names, []
        self.lock = threading.Lock()

    def predict_batch(self, images, questions):
        with self.lock:
            self.calls.append(len(images))
        return self.gate.predict_batch(images, questions)


def test_concurrent_requests_are_micro_batched_into_the_gate(faults, tiny_gate):
    from concurrent.futures import ThreadPoolExecutor

    gate = CountingGate(tiny_gate)
    settings = ServerSettings(upstream=faults.url("ok"))
    small = encode_data_url(make_document_image(400, 300, lines=4, seed=2))
    # the batch closes at 8 images (the wait is only a ceiling): the outcome does not depend on timing
    router = AsyncRouter(gate, family="idefics3", metrics=False, max_batch=8, max_wait_ms=60_000)
    with serve(create_app(settings, router=router)) as url:
        with ThreadPoolExecutor(max_workers=8) as pool:
            codes = list(
                pool.map(
                    lambda _: httpx2.post(f"{url}/v1/chat/completions", json=chat(small), timeout=60).status_code,
                    range(8),
                )
            )
    assert codes == [200] * 8 and gate.calls == [8]


def test_proxy_refuses_remote_images_on_private_addresses(faults):
    settings = ServerSettings(upstream=faults.url("ok"), allow_remote_images=True, fixed_class=0, family="idefics3")
    with serve(create_app(settings)) as url:
        response = httpx2.post(f"{url}/v1/chat/completions", json=chat("http://127.0.0.1:9/secret.png"), timeout=30)
    assert response.status_code == 400 and "non-public" in response.json()["error"]["message"]


@pytest.mark.parametrize("address,host", LOOPBACK_TARGETS)
def test_urls_passed_on_to_loopback_are_a_400_and_nothing_connects(faults, address, host, tmp_path):
    """Remote fetching is off, so these URLs would go upstream untouched, and the upstream (vLLM)
    fetches them: the same address policy applies. Nothing reaches the upstream or the target."""
    trap, log = Trap(address), tmp_path / "savings.jsonl"
    settings = ServerSettings(upstream=faults.url("ok"), family="idefics3", log_path=str(log))
    before = sum(faults.calls.values())
    requests = url_requests(trap.url(host))
    with serve(create_app(settings)) as url:
        for path, body in requests:
            response = httpx2.post(f"{url}/v1/{path}", json=body, timeout=30)
            assert response.status_code == 400, (path, body, response.text)
            error = response.json()["error"]
            assert error["code"] == "ForbiddenURLError" and "non-public" in error["message"]
            assert error["type"] == "invalid_request_error"
    assert sum(faults.calls.values()) == before and not trap.connected()
    trap.close()
    records = read_records(log, len(requests) - 1)  # one per chat request; /v1/responses is passed through
    assert len(records) == len(requests) - 1
    assert all(r["status"] == "error" and r["error"] == "ForbiddenURLError" for r in records), records


def test_an_image_url_the_upstream_cannot_fetch_is_the_clients_400(vllm_server, tmp_path):
    """With private networks allowed the URL goes on to vLLM, which cannot connect (nothing listens
    on the loopback port) and answers 500 "Cannot connect to host": the client gets a 400."""
    log = tmp_path / "savings.jsonl"
    settings = ServerSettings(
        upstream=vllm_server, family="idefics3", allow_private_networks=True, upstream_retries=0, log_path=str(log)
    )
    dead = f"http://127.0.0.1:{free_port()}/missing.png"
    with serve(create_app(settings)) as url:
        response = httpx2.post(f"{url}/v1/chat/completions", json=chat(dead), timeout=60)
        assert httpx2.get(f"{url}/healthz").status_code == 200
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (
        error["code"] == "ImageError" and "could not fetch image URL" in error["message"] and dead in error["message"]
    )
    (record,) = read_records(log, 1)
    assert record["status"] == "error" and record["error"] == "ImageError" and record["downstream_ms"] > 0


def test_graceful_shutdown_drains_in_flight_requests_and_flushes_the_log(faults, tiny_gate, tmp_path):
    log = tmp_path / "savings.jsonl"
    settings = ServerSettings(upstream=faults.url("stall"), upstream_timeout_s=10, upstream_retries=0)
    router = AsyncRouter(tiny_gate, family="idefics3", metrics=False, log=log)
    results: list = []
    before = faults.calls["stall"]
    with serve(create_app(settings, router=router)) as url:
        worker = threading.Thread(
            target=lambda: results.append(
                httpx2.post(
                    f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}, timeout=30
                )
            )
        )
        worker.start()
        assert faults.wait_for_calls("stall", before + 1)  # in flight (the upstream takes 3 s) when shutdown begins
    worker.join(30)
    assert results and results[0].status_code == 200
    assert len(log.read_text().splitlines()) == 1  # flushed by the app's shutdown
