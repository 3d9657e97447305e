"""The router: pass-through, batching, overrides, fail-open/raise, accounting, log and metrics."""

from __future__ import annotations

import base64
import io
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image
from prometheus_client import CollectorRegistry
from resgate_router.adapters import CallableAdapter

from resgate_router import AsyncRouter, GateError, GateTimeoutError, ImageError, InputError, Router
from resgate_router.gate import GateDecision
from resgate_router.messages import encode_data_url
from resgate_router.prometheus import RouterMetrics
from resgate_router.testing import make_document_image

from .badimages import corrupt_inputs


class SpyGate:
    """A real gate, with its calls recorded (and optionally slowed down or broken)."""

    needs_pixels = True

    def __init__(self, gate, *, hold: threading.Event | None = None, error: Exception | None = None) -> None:
        self.gate, self.hold, self.error, self.calls = gate, hold, error, []
        self.ladder, self.class_names = gate.ladder, gate.class_names

    def predict_batch(self, images, questions):
        self.calls.append(len(images))
        if self.hold is not None:  # slower than any budget, until the test releases it
            self.hold.wait(60)
        if self.error is not None:
            raise self.error
        return self.gate.predict_batch(images, questions)


class Downstream:
    """Records what reaches the downstream."""

    def __init__(self) -> None:
        self.requests: list = []
        self.lock = threading.Lock()

    def __call__(self, request, processor_kwargs):
        with self.lock:
            self.requests.append((request, processor_kwargs))
        return {"choices": [{"message": {"role": "assistant", "content": "ok"}}]}


def chat(*parts, question="What is the total amount?"):
    return {"model": "smolvlm", "messages": [{"role": "user", "content": [*parts, {"type": "text", "text": question}]}]}


def image_part(image, detail=None, mime="image/png"):
    spec = {"url": encode_data_url(image, mime)}
    if detail:
        spec["detail"] = detail
    return {"type": "image_url", "image_url": spec}


def sent_image(part):
    url = part["image_url"]["url"]
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


@pytest.fixture()
def spy(tiny_gate):
    return SpyGate(tiny_gate)


@pytest.fixture()
def router(spy):
    return Router(spy, CallableAdapter(Downstream()), family="idefics3", metrics=False)


PAGE = make_document_image(1700, 2200, lines=40, seed=3)


def test_requests_without_images_pass_through_untouched(router, spy):
    request = {"model": "m", "messages": [{"role": "user", "content": "Hello"}], "temperature": 0}
    routed = router.route(request)
    assert routed.request == request and routed.processor_kwargs == {} and routed.record.status == "passthrough"
    assert spy.calls == []


def test_images_of_a_request_are_gated_in_one_batch(router, spy, tiny_gate):
    other = make_document_image(800, 600, lines=8, seed=4)
    request = {
        "messages": [
            {"role": "user", "content": [image_part(PAGE), {"type": "text", "text": "Total?"}]},
            {"role": "assistant", "content": "It is 12."},
            {"role": "user", "content": [{"type": "text", "text": "And the date here?"}, image_part(other)]},
        ]
    }
    routed = router.route(request)
    assert spy.calls == [2]
    expected = tiny_gate.predict_batch([PAGE, other], ["Total?", "And the date here?"])
    assert [i.label for i in routed.record.images] == [d.label for d in expected]
    assert routed.request["messages"][1] == request["messages"][1]


def test_decision_is_applied_and_accounted(router, tiny_gate):
    routed = router.route(chat(image_part(PAGE)))
    decision = tiny_gate.predict(PAGE, "What is the total amount?")
    entry = routed.record.images[0]
    assert entry.label == decision.label and entry.rung == decision.resolution
    if decision.resolution == "full":
        assert (
            routed.processor_kwargs == {}
            and routed.request["messages"][0]["content"][0] == chat(image_part(PAGE))["messages"][0]["content"][0]
        )
    else:
        assert routed.processor_kwargs == {"size": {"longest_edge": decision.resolution}}
        assert max(sent_image(routed.request["messages"][0]["content"][0]).size) == decision.resolution
    assert entry.baseline_tokens == router.policy.visual_tokens(1700, 2200)
    assert entry.routed_tokens == router.policy.visual_tokens(1700, 2200, decision.resolution)
    assert routed.record.saved_tokens == entry.baseline_tokens - entry.routed_tokens


@pytest.mark.parametrize("detail,expected", [("low", 384), ("high", "full")])
def test_detail_forces_a_class_without_gating(router, spy, detail, expected):
    routed = router.route(chat(image_part(PAGE, detail=detail)))
    assert spy.calls == [] and routed.record.images[0].rung == expected
    assert routed.record.images[0].source == "override"


@pytest.mark.parametrize(
    "value,target",
    [("low", 384), ("medium", 512), ("high", "full"), (1, 512), ("512", 512), ({"resolution": "low"}, 384)],
)
def test_resgate_field_forces_a_class(router, spy, value, target):
    request = {**chat(image_part(PAGE)), "resgate": value}
    routed = router.route(request)
    assert "resgate" not in routed.request and spy.calls == []
    assert routed.record.images[0].rung == target


@pytest.mark.parametrize("value", ["off", False, {"enabled": False}])
def test_routing_can_be_disabled_per_request(router, spy, value):
    request = chat(image_part(PAGE))
    routed = router.route({**request, "resgate": value})
    assert routed.request == request and routed.record.status == "disabled" and spy.calls == []


def test_header_override_beats_the_field_and_bad_values_are_typed(router):
    routed = router.route({**chat(image_part(PAGE)), "resgate": "high"}, override="low")
    assert routed.record.images[0].rung == 384
    with pytest.raises(InputError, match="override"):
        router.route(chat(image_part(PAGE)), override="huge")


def test_never_upscales(tiny_gate):
    small = make_document_image(300, 200, lines=3, seed=5)
    router = Router(tiny_gate, family="generic", metrics=False)
    routed = router.route(chat(image_part(small)), override="low")
    assert routed.record.images[0].sent == [300, 200]
    assert routed.request == chat(image_part(small))  # nothing to rewrite


def test_pil_and_jpeg_inputs_keep_their_kind(tiny_gate):
    router = Router(tiny_gate, family="generic", metrics=False)
    routed = router.route(chat({"type": "image_url", "image_url": {"url": PAGE}}), override="low")
    assert isinstance(routed.request["messages"][0]["content"][0]["image_url"]["url"], Image.Image)
    routed = router.route(chat(image_part(PAGE, mime="image/jpeg")), override="low")
    url = routed.request["messages"][0]["content"][0]["image_url"]["url"]
    assert (
        url.startswith("data:image/jpeg;base64,")
        and max(sent_image(routed.request["messages"][0]["content"][0]).size) == 384
    )


def test_remote_urls_are_not_fetched(router, spy):
    request = chat({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}})
    routed = router.route(request)
    assert routed.request == request and spy.calls == [] and routed.record.remote_images == 1


def test_corrupt_image_fails_open_to_the_untouched_request(spy):
    downstream = Downstream()
    router = Router(spy, CallableAdapter(downstream), family="idefics3", metrics=False)
    url = "data:image/png;base64," + base64.b64encode(corrupt_inputs()["truncated-png"]).decode()
    request = chat({"type": "image_url", "image_url": {"url": url}})
    result = router.complete(request)
    assert result.record.status == "fallback" and result.record.error == "ImageError"
    assert downstream.requests == [(request, {})]
    with pytest.raises(ImageError):
        Router(spy, CallableAdapter(downstream), family="idefics3", on_gate_error="raise", metrics=False).complete(
            request
        )


@pytest.mark.parametrize("error", [RuntimeError("CUDA out of memory"), GateError("broken")])
def test_failing_gate_falls_back_to_baseline(tiny_gate, error):
    downstream = Downstream()
    router = Router(SpyGate(tiny_gate, error=error), CallableAdapter(downstream), family="idefics3", metrics=False)
    result = router.complete(chat(image_part(PAGE)))
    assert result.record.status == "fallback" and result.record.error == type(error).__name__
    assert result.record.images[0].source == "fallback" and result.record.saved_tokens == 0
    assert downstream.requests[0][1] == {}  # baseline: the processor's defaults
    raising = Router(
        SpyGate(tiny_gate, error=error),
        CallableAdapter(downstream),
        family="idefics3",
        on_gate_error="raise",
        metrics=False,
    )
    with pytest.raises(GateError):
        raising.complete(chat(image_part(PAGE)))


class WrongGate:
    """A user's gate with a bug: it answers, but not with decisions the router can use."""

    needs_pixels = True

    def __init__(self, tiny_gate, answer) -> None:
        self.ladder, self.class_names, self.answer = tiny_gate.ladder, tiny_gate.class_names, answer

    def predict_batch(self, images, questions):
        return self.answer(len(images))


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda n: [], "gate returned 0 decisions for 1 images"),
        (lambda n: [None] * n, "not a decision on this 3-rung ladder"),
        (lambda n: [GateDecision(7, 384, (1.0,), 384.0, "x")] * n, "not a decision"),
    ],
)
def test_a_gate_answering_nonsense_fails_open(tiny_gate, answer, message, caplog):
    downstream = Downstream()
    router = Router(WrongGate(tiny_gate, answer), CallableAdapter(downstream), family="idefics3", metrics=False)
    result = router.complete(chat(image_part(PAGE)))
    assert result.record.status == "fallback" and result.record.error == "GateError"
    assert downstream.requests[0][1] == {} and message in caplog.text
    raising = Router(WrongGate(tiny_gate, answer), family="idefics3", on_gate_error="raise", metrics=False)
    with pytest.raises(GateError, match=message):
        raising.route(chat(image_part(PAGE)))


def test_slow_gate_times_out_to_baseline(tiny_gate):
    downstream = Downstream()
    release = threading.Event()
    slow = SpyGate(tiny_gate, hold=release)
    router = Router(slow, CallableAdapter(downstream), family="idefics3", gate_timeout=0.2, metrics=False)
    try:
        result = router.complete(chat(image_part(PAGE)))  # answered while the gate is still held
        assert result.record.status == "fallback" and result.record.error == "GateTimeoutError"
        assert result.record.gate_ms >= 200 and len(downstream.requests) == 1
        with pytest.raises(GateTimeoutError):
            Router(slow, CallableAdapter(downstream), family="idefics3", gate_timeout=0.2, on_gate_error="raise").route(
                chat(image_part(PAGE))
            )
    finally:
        release.set()


def test_baseline_caps_every_rung(tiny_gate):
    router = Router(tiny_gate, family="qwen2_vl", baseline=1024, metrics=False)
    routed = router.route(chat(image_part(PAGE)), override="high")
    assert routed.record.images[0].rung == 1024 and routed.record.saved_tokens == 0
    assert routed.record.baseline_tokens == router.policy.visual_tokens(1700, 2200, 1024)


def test_continuous_mode_rounds_the_expected_resolution_up(tiny_gate):
    router = Router(tiny_gate, family="idefics3", mode="continuous", metrics=False)
    routed = router.route(chat(image_part(PAGE)))
    expected = tiny_gate.predict(PAGE, "What is the total amount?").expected_resolution
    target = routed.record.images[0].rung
    assert target == "full" or (target >= expected and target % 512 == 0 and target - expected < 512)


def test_routed_tokens_equal_the_real_processor(tiny_gate, tiny_backbone):
    """With the model's own processor config the accounting is exact for what is actually sent."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_backbone)
    router = Router(tiny_gate, family="idefics3", model=tiny_backbone, metrics=False)
    empty = len(processor.tokenizer("").input_ids)
    for override in ("low", "medium", "high"):
        routed = router.route(chat(image_part(PAGE)), override=override)
        image = sent_image(routed.request["messages"][0]["content"][0]).convert("RGB")
        real = len(processor(text=["<image>"], images=[[image]], **routed.processor_kwargs)["input_ids"][0]) - empty
        assert real == routed.record.routed_tokens
        assert routed.record.flops_saved >= 0


def test_concurrent_requests_log_exactly_one_record_each(tiny_gate, tmp_path):
    n = 48
    log = tmp_path / "savings.jsonl"
    router = Router(tiny_gate, CallableAdapter(Downstream()), family="idefics3", log=log, metrics=False)
    pages = [make_document_image(600, 800, lines=6, seed=s) for s in range(4)]
    requests = [
        chat(image_part(pages[i % 4])) if i % 3 else {"messages": [{"role": "user", "content": "hi"}]} for i in range(n)
    ]
    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(router.complete, requests))
    router.close()
    lines = log.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(lines) == n and len({r["id"] for r in records}) == n
    assert {r["id"] for r in records} == {r.record.id for r in results}
    assert all("url" not in line and "base64" not in line for line in lines)  # no image bytes in the log
    assert router.stats.requests == n


def test_metrics_count_requests_and_tokens(tiny_gate):
    registry = CollectorRegistry()
    router = Router(tiny_gate, CallableAdapter(Downstream()), family="idefics3", metrics=RouterMetrics(registry))
    result = router.complete(chat(image_part(PAGE)), override="low")
    router.complete({"messages": [{"role": "user", "content": "hi"}]})
    get = registry.get_sample_value
    assert get("resgate_requests_total", {"family": "idefics3", "status": "routed"}) == 1
    assert get("resgate_requests_total", {"family": "idefics3", "status": "passthrough"}) == 1
    assert get("resgate_visual_tokens_total", {"family": "idefics3", "kind": "saved"}) == result.record.saved_tokens
    assert get("resgate_images_total", {"family": "idefics3", "class_name": "low", "source": "override"}) == 1
    summary = router.stats.summary()
    assert summary["requests"] == 2 and summary["saved_tokens"] == result.record.saved_tokens


def test_adapter_errors_are_recorded_and_raised(tiny_gate, tmp_path):
    def broken(request, kwargs):
        raise ConnectionError("upstream down")

    router = Router(tiny_gate, CallableAdapter(broken), family="idefics3", log=tmp_path / "log.jsonl", metrics=False)
    with pytest.raises(ConnectionError):
        router.complete(chat(image_part(PAGE)), override="low")
    router.close()
    record = json.loads((tmp_path / "log.jsonl").read_text())
    assert record["status"] == "error" and record["error"] == "ConnectionError"


def test_questions_are_logged_only_when_asked(tiny_gate):
    quiet = Router(tiny_gate, family="idefics3", metrics=False).route(chat(image_part(PAGE)))
    logged = json.dumps(quiet.record.to_dict())
    assert "question" not in logged and "What is the total" not in logged
    loud = Router(tiny_gate, family="idefics3", metrics=False, log_questions=True).route(chat(image_part(PAGE)))
    assert loud.record.images[0].question == "What is the total amount?"


def test_corrupt_pixels_found_when_resizing_fail_open(tiny_gate):
    """A truncated image whose header parses: no gate runs (forced class), the resize finds it."""
    downstream = Downstream()
    router = Router(tiny_gate, CallableAdapter(downstream), family="qwen2_vl", metrics=False)
    data = encode_data_url(PAGE)
    raw = base64.b64decode(data.split(",", 1)[1])
    url = "data:image/png;base64," + base64.b64encode(raw[: len(raw) // 2]).decode()
    request = chat({"type": "image_url", "image_url": {"url": url}})
    result = router.complete(request, override="low")
    assert result.record.status == "fallback" and result.record.error == "ImageError"
    assert downstream.requests == [(request, {})]
    with pytest.raises(ImageError):
        Router(tiny_gate, family="qwen2_vl", on_gate_error="raise", metrics=False).route(request, override="low")


def test_forced_full_resolution_never_decodes_the_pixels(tiny_gate):
    router = Router(tiny_gate, family="idefics3", metrics=False)
    request = chat(image_part(PAGE))
    routed = router.route(request, override="high")
    assert routed.request == request and routed.record.images[0].native == [1700, 2200]


def test_route_batch_gates_all_requests_in_one_call(spy, tiny_gate):
    router = Router(spy, family="idefics3", metrics=False)
    other = make_document_image(800, 600, lines=8, seed=4)
    requests = [
        chat(image_part(PAGE)),
        {"messages": [{"role": "user", "content": "hi"}]},
        chat(image_part(other), image_part(PAGE), question="Date?"),
        {**chat(image_part(other)), "resgate": "low"},
    ]
    batch = router.route_batch(requests)
    assert spy.calls == [3]  # three gated images, one call; the text-only and forced ones skip the gate
    singles = [Router(tiny_gate, family="idefics3", metrics=False).route(r) for r in requests]
    assert [b.record.status for b in batch] == ["routed", "passthrough", "routed", "routed"]
    for b, s in zip(batch, singles):
        assert [i.rung for i in b.record.images] == [i.rung for i in s.record.images]
        assert b.processor_kwargs == s.processor_kwargs and b.record.routed_tokens == s.record.routed_tokens


def test_route_batch_fails_open_per_request(tiny_gate):
    router = Router(SpyGate(tiny_gate, error=RuntimeError("boom")), family="idefics3", metrics=False)
    batch = router.route_batch([chat(image_part(PAGE)), {**chat(image_part(PAGE)), "resgate": "low"}])
    assert [b.record.status for b in batch] == ["fallback", "routed"]


def test_route_batch_keeps_a_bad_request_from_its_neighbours(spy):
    router = Router(spy, family="idefics3", metrics=False, on_bad_input="raise")
    bad = {"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}
    requests = [chat(image_part(PAGE)), bad, "not a request", chat(image_part(PAGE), question="Date?")]
    with pytest.raises(ImageError):  # without return_exceptions the first failure is raised
        router.route_batch(requests)
    spy.calls.clear()
    batch = router.route_batch(requests, return_exceptions=True)
    assert isinstance(batch[1], ImageError) and isinstance(batch[2], InputError)
    assert [b.record.status for b in (batch[0], batch[3])] == ["routed", "routed"]
    assert spy.calls == [2]  # the two good requests still share one gate call


def test_async_router_batches_concurrent_requests_and_hands_each_its_own_outcome(spy):
    import asyncio

    # the batch closes at 3 images (the wait is only a ceiling): no timing in the outcome
    router = AsyncRouter(spy, family="idefics3", metrics=False, on_bad_input="raise", max_batch=3, max_wait_ms=60_000)
    bad = {"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}

    async def run():
        good = [chat(image_part(PAGE), question=f"Q{k}?") for k in range(3)]
        outcomes = await asyncio.gather(*(router.route(r) for r in [*good, bad]), return_exceptions=True)
        await router.aclose()
        return outcomes

    outcomes = asyncio.run(run())
    assert [o.record.status for o in outcomes[:3]] == ["routed"] * 3 and isinstance(outcomes[3], ImageError)
    assert spy.calls == [3]  # a hostile request does not cost its neighbours their batching


def test_async_batch_that_fails_in_finishing_hands_each_request_its_error_and_keeps_serving(tiny_gate):
    """Finishing is where a gate error with on_gate_error="raise" surfaces: each request of the batch
    gets it in its own place, and the batcher serves the next batch."""
    import asyncio

    broken = SpyGate(tiny_gate, error=RuntimeError("boom"))
    options = {"on_gate_error": "raise", "max_batch": 2, "max_wait_ms": 60_000}
    router = AsyncRouter(broken, family="idefics3", metrics=False, **options)

    async def run():
        pair = [chat(image_part(PAGE), question=f"Q{k}?") for k in range(2)]
        failed = await asyncio.gather(*(router.route(r) for r in pair), return_exceptions=True)
        broken.error = None
        served = await asyncio.gather(*(router.route(r) for r in pair))
        await router.aclose()
        return failed, served

    failed, served = asyncio.run(run())
    assert all(isinstance(f, GateError) for f in failed)
    assert [s.record.status for s in served] == ["routed", "routed"] and broken.calls == [2, 2]


def test_pixel_limit_is_enforced_from_the_header(tiny_gate):
    router = Router(tiny_gate, family="idefics3", metrics=False, on_bad_input="raise", max_pixels=1_000_000)
    with pytest.raises(ImageError, match="limit"):
        router.route(chat(image_part(PAGE)))  # 1700 x 2200 = 3.7 MP
    assert Router(tiny_gate, family="idefics3", metrics=False).route(chat(image_part(PAGE))).record.status == "routed"


def test_fixed_gate_is_a_constant_decision_also_in_continuous_mode():
    from resgate_router.gate import FixedGate

    for label, target in [(0, 512), (2, "full")]:  # 384 rounds up to idefics3's 512 tile
        router = Router(FixedGate(label), family="idefics3", mode="continuous", metrics=False)
        assert router.route(chat(image_part(PAGE))).record.images[0].rung == target
    assert FixedGate(2).predict(PAGE, "q").expected_resolution == 2200


def test_a_recorded_stream_is_one_record_however_it_ends():
    """The stream bookkeeping every entry point shares: read to the end (a response), an in-band
    error event (an error, the stream still passed on whole), a reader that stops early (an error)."""
    import asyncio
    import time

    from resgate_router.errors import UpstreamProtocolError

    router = Router(metrics=False)
    seen = []
    router.on("response_received", lambda record, _: seen.append((record.status, record.error)))
    router.on("error", lambda record, _: seen.append((record.status, record.error)))

    def event(chunk):
        return UpstreamProtocolError("error event") if chunk.startswith('data: {"error"') else None

    async def chunks(*items):
        for item in items:
            yield item

    async def read(items, stop_after=None, failed=None):
        record = router.new_record({})
        stream = router.recorded_astream(record, chunks(*items), time.perf_counter(), failed)
        got = []
        async for chunk in stream:
            got.append(chunk)
            if stop_after is not None and len(got) == stop_after:
                await stream.aclose()
                break
        return got, record

    whole, record = asyncio.run(read(["data: 1", "data: 2"]))
    assert whole == ["data: 1", "data: 2"] and record.downstream_ms is not None
    passed, _ = asyncio.run(read(["data: 1", 'data: {"error": "x"}', "data: 3"], failed=event))
    assert len(passed) == 3
    asyncio.run(read(["data: 1", "data: 2"], stop_after=1))
    assert list(router.recorded_stream(router.new_record({}), iter([1, 2]), time.perf_counter())) == [1, 2]
    assert seen == [(None, None), ("error", "UpstreamProtocolError"), ("error", "GeneratorExit"), (None, None)]
