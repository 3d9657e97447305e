"""The fault matrix: the proxy (real uvicorn on loopback) in front of a real loopback upstream that
fails on purpose, and gates that fail. Each row writes down what a client gets, how fast, how often
the upstream was called, and the one savings-log record the request leaves. benchmarks/RELIABILITY.md
holds the same table.
"""

from __future__ import annotations

import gc
import io
import json
import logging
import threading
import time
from dataclasses import dataclass

import httpx2
import openai
import pytest
from PIL import Image

from resgate_router import AsyncRouter, Router
from resgate_router.messages import decode_data_url, encode_data_url
from resgate_router.server import ServerSettings, create_app
from resgate_router.testing import make_document_image
from resgate_router.tools.servers import free_port, serve_app

from .logs import read_records
from .upstreams import running_proxy, sse_events

PAGE = make_document_image(800, 600, lines=8, seed=5)
TIMEOUT = 1.0  # the proxy's upstream timeout in every row


@dataclass(frozen=True)
class Setup:
    upstream: str = "ok"  # a FaultServer scenario, or "refuse" (nothing listens on the port)
    stream: bool = False
    gate: str = "real"  # real | raises | slow | memory
    on_gate_error: str = "baseline"


@dataclass(frozen=True)
class Expected:
    status: int  # HTTP status the client sees
    code: str | None = None  # error code in the body (or in the stream's error event); None: success
    log: str = "routed"  # status of the request's one savings-log record
    calls: int | None = 1  # upstream calls (None: not counted)
    min_s: float = 0.0  # the client has its answer no sooner (a retry delay, a timeout): a lower bound only,
    # which a loaded machine cannot break; that nothing hangs is pytest-timeout's and the client's timeout's job


FAULTS = [
    ("ok", Setup(), Expected(200)),
    ("refused", Setup("refuse"), Expected(502, "UpstreamConnectionError", "error", None, min_s=0.45)),
    ("reset", Setup("reset"), Expected(502, "UpstreamConnectionError", "error", 2, min_s=0.45)),
    ("stall", Setup("stall"), Expected(504, "UpstreamTimeout", "error", 1, min_s=TIMEOUT)),
    ("429 + Retry-After, then ok", Setup("retry429"), Expected(200, calls=2, min_s=0.28)),
    ("503 + Retry-After, then ok", Setup("retry503"), Expected(200, calls=2, min_s=0.28)),
    ("500 without Retry-After, then ok", Setup("flaky500"), Expected(200, calls=2, min_s=0.45)),
    ("503 always", Setup("always503"), Expected(502, "UpstreamStatusError", "error", 2, min_s=0.45)),
    ("429 always", Setup("always429"), Expected(429, "UpstreamStatusError", "error", 2, min_s=0.18)),
    ("400 (client's fault)", Setup("bad400"), Expected(400, "UpstreamStatusError", "error", 1)),
    ("malformed JSON", Setup("badjson"), Expected(502, "UpstreamProtocolError", "error", 1)),
    ("stream ok", Setup("stream", stream=True), Expected(200)),
    ("stream cut mid-way", Setup("cutstream", stream=True), Expected(200, "UpstreamProtocolError", "error")),
    (
        "stream stalls mid-way",
        Setup("stallstream", stream=True),
        Expected(200, "UpstreamTimeout", "error", min_s=TIMEOUT),
    ),
    ("stream, upstream refused", Setup("refuse", stream=True), Expected(502, "UpstreamConnectionError", "error", None)),
    ("stream, upstream 503", Setup("always503", stream=True), Expected(502, "UpstreamStatusError", "error", 2)),
    ("gate raises", Setup(gate="raises"), Expected(200, log="fallback")),
    (
        "gate raises, on_gate_error=raise",
        Setup(gate="raises", on_gate_error="raise"),
        Expected(500, "GateError", "error", 0),
    ),
    ("gate over its time budget", Setup(gate="slow"), Expected(200, log="fallback", min_s=0.3)),
    ("gate out of memory (simulated)", Setup(gate="memory"), Expected(200, log="fallback")),
]


class FaultyGate:
    """The real tiny gate behind a fault: raises (``exc``), or first waits until ``hold`` is set (a gate
    slower than any budget, for as long as the test wants). A real out-of-memory cannot be produced
    safely in a test, so MemoryError is raised by this fake."""

    needs_pixels = True

    def __init__(self, gate, *, exc: BaseException | None = None, hold: threading.Event | None = None) -> None:
        self.gate, self.ladder, self.class_names, self.exc, self.hold = gate, gate.ladder, gate.class_names, exc, hold
        self.returned = threading.Event()

    def predict_batch(self, images, questions):
        if self.exc is not None:
            raise self.exc
        if self.hold is not None:
            self.hold.wait(60)
        try:
            return self.gate.predict_batch(images, questions)
        finally:
            self.returned.set()


GATE_BUDGET = 0.3  # the router's gate time budget in the "slow" row; the slow gate runs until released
#: the error a failing-open gate leaves in its "fallback" record
GATE_ERRORS = {"raises": "RuntimeError", "slow": "GateTimeoutError", "memory": "MemoryError"}


def make_gate(kind: str, tiny_gate):
    return {
        "real": tiny_gate,
        "raises": FaultyGate(tiny_gate, exc=RuntimeError("gate bug")),
        "slow": FaultyGate(tiny_gate, hold=threading.Event()),
        "memory": FaultyGate(tiny_gate, exc=MemoryError("simulated out-of-memory")),
    }[kind]


def chat(model: str = "m", stream: bool = False) -> dict:
    content = [{"type": "image_url", "image_url": {"url": encode_data_url(PAGE)}}, {"type": "text", "text": "Total?"}]
    return {"model": model, "messages": [{"role": "user", "content": content}], "stream": stream}


@pytest.mark.parametrize("setup,expected", [pytest.param(s, e, id=name) for name, s, e in FAULTS])
def test_fault_matrix(setup, expected, tiny_gate, tmp_path):
    log = tmp_path / "savings.jsonl"
    settings = {"upstream_timeout_s": TIMEOUT, "upstream_retries": 1}
    if setup.upstream == "refuse":  # a port nothing listens on (free_port released it)
        settings["upstream"] = f"http://127.0.0.1:{free_port()}/v1"
    gate = make_gate(setup.gate, tiny_gate)
    router = AsyncRouter(
        gate,
        family="idefics3",
        metrics=False,
        log=log,
        allow_local_paths=False,
        on_bad_input="raise",
        on_gate_error=setup.on_gate_error,
        gate_timeout=GATE_BUDGET if setup.gate == "slow" else None,
    )
    try:
        with running_proxy(router, scenario=setup.upstream, **settings) as (proxy, upstream):
            started = time.monotonic()
            response = httpx2.post(f"{proxy}/v1/chat/completions", json=chat(stream=setup.stream), timeout=30)
            elapsed = time.monotonic() - started
            if setup.gate == "slow":  # the client had its answer while the gate was still running
                assert not gate.returned.is_set()
            assert httpx2.get(f"{proxy}/healthz").json() == {"status": "ok"}  # the proxy survived
    finally:
        if setup.gate == "slow":
            gate.hold.set()

    assert response.status_code == expected.status, response.text
    assert elapsed >= expected.min_s, elapsed
    if setup.stream and response.status_code == 200:
        events = sse_events(response.text)
        if expected.code is None:
            assert events[-1] == "[DONE]" and len(events) == 4
        else:  # a clean end: the chunks that came, then one error event, no [DONE]
            error = json.loads(events[-1])["error"]
            assert len(events) == 4 and error["code"] == expected.code and error["type"] == "upstream_error"
    elif expected.code is None:
        assert response.json()["choices"][0]["message"]["content"] == "ok"
    else:
        error = response.json()["error"]
        assert error["code"] == expected.code and error["message"]
        kind = {400: "invalid_request_error", 429: "invalid_request_error", 500: "server_error"}
        assert error["type"] == kind.get(expected.status, "upstream_error"), error
        # a passed-through 429 keeps the upstream's Retry-After, so the client's SDK waits as asked
        assert response.headers.get("retry-after") == ("0.2" if expected.status == 429 else None)
    if expected.calls is not None:
        assert upstream.calls[setup.upstream] == expected.calls
    if expected.status == 200 and expected.calls == 2:  # the retry waited (Retry-After or backoff)
        assert upstream.times[1] - upstream.times[0] >= expected.min_s

    records = read_records(log, 1)
    assert len(records) == 1, records  # one record per request, never none, never two
    record = records[0]
    assert record["status"] == expected.log, record
    # the downstream's time, plain or streamed, success or failure; none only if it was never called
    assert (record["downstream_ms"] is None) == (expected.calls == 0), record
    if expected.log == "fallback":  # failed open: the upstream got the image at the baseline (as sent)
        assert record["error"] == GATE_ERRORS[setup.gate], record
        sent = upstream.bodies[-1]["messages"][0]["content"][0]["image_url"]["url"]
        assert Image.open(io.BytesIO(decode_data_url(sent)[1])).size == PAGE.size
    if setup.gate == "slow":  # the router waited for its budget, not for the gate
        assert record["gate_ms"] >= GATE_BUDGET * 1000
    if expected.log == "error":
        assert record["error"] == expected.code


def test_the_openai_client_sees_typed_errors_and_clean_stream_ends(upstream, tiny_gate):
    """What a user of the official client gets: typed exceptions, never a hang."""

    def client(scenario: str) -> openai.OpenAI:
        settings = ServerSettings(upstream=upstream.url(scenario), upstream_timeout_s=TIMEOUT, upstream_retries=0)
        return create_app(settings, router=AsyncRouter(tiny_gate, family="idefics3", metrics=False))

    request = chat()
    request.pop("stream")
    cases = {
        "badjson": openai.InternalServerError,
        "always429": openai.RateLimitError,
        "stall": openai.InternalServerError,
    }
    for scenario, error in cases.items():
        with serve_app(client(scenario)) as proxy:
            api = openai.OpenAI(base_url=f"{proxy}/v1", api_key="unused", max_retries=0, timeout=30)
            with pytest.raises(error) as info:
                api.chat.completions.create(**request)
            assert info.value.status_code == {"badjson": 502, "always429": 429, "stall": 504}[scenario]
            api.close()
    with serve_app(client("cutstream")) as proxy:
        api = openai.OpenAI(base_url=f"{proxy}/v1", api_key="unused", max_retries=0, timeout=30)
        received = []
        with pytest.raises(openai.APIError, match="ended before"):
            for chunk in api.chat.completions.create(**request, stream=True):
                received.append(chunk.choices[0].delta.content)
        assert received == ["t0", "t1", "t2"]
        api.close()


def test_a_hung_gate_fails_open_within_budget_and_holds_bounded_memory(tiny_gate, caplog):
    """A gate call past its budget keeps its worker thread until it returns; a gate that never
    returns must not make later requests queue their images without bound."""
    caplog.set_level(logging.ERROR, logger="resgate_router.router")  # captured warnings would keep the images
    release = threading.Event()
    hung = FaultyGate(tiny_gate)
    hung.predict_batch = lambda images, questions: release.wait(60) and []
    router = Router(hung, family="idefics3", metrics=False, gate_timeout=0.1)
    request = chat()
    gc.collect()
    before = sum(issubclass(type(o), Image.Image) for o in gc.get_objects())
    try:
        for _ in range(12):  # each returns while the gate still hangs: the router never waits for it
            record = router.route(request).record
            assert record.status == "fallback" and record.error == "GateTimeoutError"
            assert record.gate_ms >= 100 and not release.is_set()
        gc.collect()
        held = sum(issubclass(type(o), Image.Image) for o in gc.get_objects()) - before
        assert held <= 4  # the images of the four stuck calls at most, not one per request
    finally:
        release.set()
        router.close()


def test_a_client_that_hangs_up_mid_stream_still_leaves_one_record(tiny_gate, tmp_path):
    log = tmp_path / "savings.jsonl"
    router = AsyncRouter(tiny_gate, family="idefics3", metrics=False, log=log)
    with running_proxy(router, scenario="stallstream", upstream_timeout_s=10) as (proxy, _):
        with httpx2.stream("POST", f"{proxy}/v1/chat/completions", json=chat(stream=True), timeout=30) as reply:
            assert reply.status_code == 200
            next(reply.iter_lines())  # the first chunk arrived; the upstream now stalls; hang up
        records = read_records(log, 1)  # written when the proxy sees the client gone
        assert httpx2.get(f"{proxy}/healthz").status_code == 200
    assert len(records) == 1 and records[0]["status"] == "error", records
    assert records[0]["error"] == "CancelledError", records


class BuggyRouter(AsyncRouter):
    """A router with a bug in its routing step. No real component fails like this on purpose, so this
    fake stands in for any unexpected exception inside the proxy."""

    async def _route(self, request, override, record):
        raise RuntimeError("secret /internal/path leaked")


def test_an_unexpected_error_is_an_openai_500_without_internals_and_one_record(tiny_gate, tmp_path):
    log = tmp_path / "savings.jsonl"
    router = BuggyRouter(tiny_gate, family="idefics3", metrics=False, log=log)
    text_only = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}  # routed without the batcher
    with running_proxy(router) as (proxy, _):
        reply = httpx2.post(f"{proxy}/v1/chat/completions", json=text_only, timeout=30)
        assert httpx2.get(f"{proxy}/healthz").status_code == 200
    assert reply.status_code == 500
    error = reply.json()["error"]
    assert error["type"] == "server_error" and error["code"] == "RuntimeError" and "secret" not in reply.text
    records = read_records(log, 1)
    assert len(records) == 1 and records[0]["status"] == "error" and records[0]["error"] == "RuntimeError"
