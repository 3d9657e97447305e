"""One request lifecycle under every entry point: exactly one savings record per request, with the
same fields, on success and on an upstream failure; hooks in order; images decoded at most once.

The upstream is a real loopback HTTP server (tests/upstreams.py): "ok" answers (and streams when
asked), "always503" fails. The vLLM plugin and ``GatedLLM`` are covered against a real vLLM in
test_vllm_plugin.py and test_gated_llm.py with the same field check (``RECORD_FIELDS``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import httpx2
import openai
import pytest
from PIL import ImageFile
from resgate_router.adapters.openai_http import AsyncOpenAIAdapter, OpenAIAdapter

from resgate_router import AsyncRouter, FixedGate, Router, SmolVLMGate
from resgate_router.messages import encode_data_url
from resgate_router.testing import make_document_image

from .logs import RECORD_FIELDS
from .upstreams import running_proxy

PAGE = make_document_image(900, 1200, lines=10, seed=3)
URL = encode_data_url(PAGE)


def chat(**extra):
    content = [{"type": "image_url", "image_url": {"url": URL}}, {"type": "text", "text": "What is the total?"}]
    return {"model": "m", "messages": [{"role": "user", "content": content}], "max_tokens": 2, **extra}


def router_complete(gate, url, log):
    with Router(gate, OpenAIAdapter(url, max_retries=0), family="idefics3", log=log, metrics=False) as router:
        return router.complete(chat()).response


def router_stream(gate, url, log):
    with Router(gate, OpenAIAdapter(url, max_retries=0), family="idefics3", log=log, metrics=False) as router:
        return list(router.stream(chat()))


def async_complete(gate, url, log):
    async def run():
        async with AsyncRouter(gate, AsyncOpenAIAdapter(url, max_retries=0), family="idefics3", log=log) as router:
            return (await router.complete(chat())).response

    return asyncio.run(run())


def async_stream(gate, url, log):
    async def run():
        async with AsyncRouter(gate, AsyncOpenAIAdapter(url, max_retries=0), family="idefics3", log=log) as router:
            return [chunk async for chunk in router.stream(chat())]

    return asyncio.run(run())


def wrap_sync(gate, url, log, stream=False):
    with Router(gate, family="idefics3", log=log, metrics=False) as router:
        with openai.OpenAI(base_url=url, api_key="k", max_retries=0) as raw:
            out = router.wrap(raw).chat.completions.create(**chat(stream=stream))
            return list(out) if stream else out


def wrap_async(gate, url, log, stream=False):
    async def run():
        async with AsyncRouter(gate, family="idefics3", log=log, metrics=False) as router:
            async with openai.AsyncOpenAI(base_url=url, api_key="k", max_retries=0) as raw:
                out = await router.wrap(raw).chat.completions.create(**chat(stream=stream))
                return [c async for c in out] if stream else out

    return asyncio.run(run())


def proxy(gate, scenario, log, stream=False):
    router = AsyncRouter(gate, family="idefics3", log=log, metrics=False)
    with running_proxy(router, scenario=scenario, upstream_retries=0) as (url, _):
        response = httpx2.post(f"{url}/v1/chat/completions", json=chat(stream=stream), timeout=30)
    if response.status_code >= 400 or (stream and b'"error"' in response.content):
        raise RuntimeError(response.text)
    return response


ENTRY_POINTS = {
    "Router.complete": router_complete,
    "Router.stream": router_stream,
    "AsyncRouter.complete": async_complete,
    "AsyncRouter.stream": async_stream,
    "wrap": wrap_sync,
    "wrap stream": lambda g, u, log: wrap_sync(g, u, log, stream=True),
    "wrap async": wrap_async,
    "wrap async stream": lambda g, u, log: wrap_async(g, u, log, stream=True),
}
PROXIES = {"proxy": proxy, "proxy stream": lambda g, s, log: proxy(g, s, log, stream=True)}


def one_record(log):
    lines = log.read_text().splitlines() if log.exists() else []  # every router is closed: flushed
    assert len(lines) == 1, lines  # one record per request, never none, never two
    record = json.loads(lines[0])
    assert set(record) == RECORD_FIELDS, set(record) ^ RECORD_FIELDS
    return record


@pytest.mark.parametrize("scenario", ["ok", "always503"])
@pytest.mark.parametrize("entry", [*ENTRY_POINTS, *PROXIES])
def test_every_entry_point_writes_one_record_with_the_same_fields(upstream, tmp_path, entry, scenario):
    gate, log = FixedGate(0), tmp_path / "savings.jsonl"
    try:
        if entry in PROXIES:
            PROXIES[entry](gate, scenario, log)
        else:
            ENTRY_POINTS[entry](gate, upstream.url(scenario), log)
        failed = None
    except Exception as exc:  # the upstream's failure, as each entry point raises it
        failed = exc
    assert (failed is None) == (scenario == "ok"), failed
    record = one_record(log)
    assert record["status"] == ("routed" if scenario == "ok" else "error")
    assert record["downstream_ms"] is not None and record["downstream_ms"] > 0  # the call was made and timed
    assert record["gate_ms"] is not None and record["images"][0]["source"] == "gate"
    assert record["saved_tokens"] > 0
    # the upstream's 503 as it reached the router: the openai client's own error under wrap, else ours
    expected = "InternalServerError" if entry.startswith("wrap") else "UpstreamStatusError"
    assert record["error"] == (None if scenario == "ok" else expected), record


def test_a_request_refused_before_the_downstream_is_one_record_too(tmp_path):
    log = tmp_path / "savings.jsonl"
    bad = {"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}
    with Router(FixedGate(0), OpenAIAdapter("http://127.0.0.1:9/v1"), on_bad_input="raise", log=log) as router:
        with pytest.raises(Exception, match="local image paths|not found|image"):
            router.complete(bad)
    record = one_record(log)
    assert record["status"] == "error" and record["downstream_ms"] is None


def _hooked(router, seen):
    router.on("gate_decision", lambda record, decisions: seen.append(("gate_decision", len(decisions))))
    router.on("request_routed", lambda routed: seen.append(("request_routed", routed.record.status)))
    router.on("response_received", lambda record, response: seen.append(("response_received", record.status)))
    router.on("error", lambda record, exc: seen.append(("error", type(exc).__name__)))
    return router


@pytest.mark.parametrize("outcome", ["ok", "always503"])
@pytest.mark.parametrize("kind", ["Router", "AsyncRouter"])
def test_hooks_fire_in_order(upstream, tiny_gate, outcome, kind):
    seen = []
    url = upstream.url(outcome)
    if kind == "Router":
        with _hooked(Router(tiny_gate, OpenAIAdapter(url, max_retries=0), family="idefics3", metrics=False), seen) as r:
            with contextlib.suppress(Exception):
                r.complete(chat())
    else:

        async def run():
            adapter = AsyncOpenAIAdapter(url, max_retries=0)
            async with _hooked(AsyncRouter(tiny_gate, adapter, family="idefics3", metrics=False), seen) as r:
                with contextlib.suppress(Exception):
                    await r.complete(chat())

        asyncio.run(run())
    last = ("response_received", "routed") if outcome == "ok" else ("error", "UpstreamStatusError")
    assert seen == [("gate_decision", 1), ("request_routed", "routed"), last]


def test_a_failing_hook_never_fails_the_request(upstream):
    router = Router(FixedGate(0), OpenAIAdapter(upstream.url("ok")), family="idefics3", metrics=False)
    router.on("request_routed", lambda routed: 1 / 0)
    with router:
        assert router.complete(chat()).record.status == "routed"


@pytest.fixture()
def decodes(monkeypatch):
    """Counts pixel decodes (Pillow's ``ImageFile.load`` on an image opened from bytes or a file)."""
    count = []
    load = ImageFile.ImageFile.load

    def counting(self):
        if self.tile:  # tiles still to read: this call decodes the pixels
            count.append(self.size)
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counting)
    return count


def test_an_image_is_decoded_once_for_a_real_gate(tiny_gate, decodes):
    routed = Router(tiny_gate, family="idefics3", metrics=False).route(chat())
    assert routed.record.status == "routed" and decodes == [PAGE.size]  # gate and resize share it


def test_the_gates_shrink_and_the_pre_resize_are_one_resize(tiny_gate_dir, monkeypatch):
    """The single-tile gate shrinks the page to 512 px on its longest side, and a decision for the
    512 rung pre-resizes it to that same size with the same filter: computed once, sent as computed."""
    import torch
    from PIL import Image

    from resgate_router.gate import resample
    from resgate_router.images import load_image
    from resgate_router.messages import decode_data_url

    gate = SmolVLMGate.from_pretrained(tiny_gate_dir)
    with torch.no_grad():  # whatever the random weights, the 512 rung (class 1)
        gate.model.head[3].weight.zero_()
        gate.model.head[3].bias.copy_(torch.tensor([-9.0, 9.0, -9.0]))
    computed = []
    real = resample._resize
    monkeypatch.setattr(resample, "_resize", lambda im, size, f: computed.append((im.size, size)) or real(im, size, f))
    routed = Router(gate, family="idefics3", metrics=False).route(chat())
    assert routed.record.images[0].rung == 512 and tuple(routed.record.images[0].sent) == (384, 512)
    assert computed.count((PAGE.size, (384, 512))) == 1  # the gate's; the pre-resize reused it
    sent = load_image(decode_data_url(routed.request["messages"][0]["content"][0]["image_url"]["url"])[1])
    assert sent.tobytes() == PAGE.resize((384, 512), Image.Resampling.LANCZOS).tobytes()


def test_a_callers_own_image_is_resized_afresh_each_time():
    """Only images nobody else holds share renditions: a caller may change theirs between calls."""
    from PIL import Image

    from resgate_router.gate.resample import resize_image, share_renditions

    mine = make_document_image(700, 500, lines=4, seed=2)
    first = resize_image(mine, (350, 250), Image.Resampling.LANCZOS)
    mine.paste((0, 0, 0), (0, 0, 700, 500))
    assert resize_image(mine, (350, 250), Image.Resampling.LANCZOS).getextrema() == ((0, 0),) * 3 != first.getextrema()
    ours = share_renditions(make_document_image(700, 500, lines=4, seed=2))
    assert resize_image(ours, (350, 250), Image.Resampling.LANCZOS) is resize_image(ours, (350, 250), 1)


@pytest.mark.parametrize("request_kwargs", [{}, {"resgate": "high"}, {"resgate": "off"}])
def test_no_decode_without_a_gate_that_needs_pixels(decodes, request_kwargs):
    from resgate_router import get_policy

    router = Router(FixedGate(0), policy=get_policy("idefics3", pre_resize=False), metrics=False)
    routed = router.route(chat(**request_kwargs))
    assert routed.record.status in ("routed", "disabled") and decodes == []


def test_in_process_adapters_get_the_pixels_not_a_data_url(tiny_gate):
    from PIL import Image
    from resgate_router.adapters import CallableAdapter

    class InProcess(CallableAdapter):
        takes_images = True

    seen = []
    router = Router(tiny_gate, InProcess(lambda request, kw: seen.append(request)), family="idefics3", metrics=False)
    router.complete(chat(resgate="low"))
    sent = seen[0]["messages"][0]["content"][0]["image_url"]["url"]
    assert isinstance(sent, Image.Image) and max(sent.size) == router.ladder[0]
