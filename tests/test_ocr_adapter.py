"""The ``ocr`` legibility reader: real RapidOCR on pages rendered here with PIL."""

from __future__ import annotations

import base64
import io
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import resgate_router.adapters.ocr as ocr_module
from PIL import Image, ImageDraw, ImageFont
from resgate_router.adapters import get_adapter_class
from resgate_router.adapters.ocr import OCRAdapter

from resgate_router.errors import ImageError, InputError
from resgate_router.gate import FixedGate
from resgate_router.policies.idefics3 import resized_size
from resgate_router.router import Router
from resgate_router.tools.scoring import contains

pytest.importorskip("rapidocr_onnxruntime")

TITLE, BODY = "ANNUAL SUMMARY", "Invoice 48213 total 907.25"


def _page(width: int = 850, height: int = 1100, body_px: int = 10) -> Image.Image:
    """A white page with a 64 px title and lines of ``body_px`` body text (3.5 px at 384: illegible)."""
    page = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(page)
    draw.text((60, 50), TITLE, font=ImageFont.load_default(size=64), fill="black")
    body = ImageFont.load_default(size=body_px)
    for row in range(8):
        draw.text((60, 200 + row * 2 * body_px), f"{BODY} row {row}", font=body, fill="black")
    return page


def _request(image: object, question: str = "What is the total?") -> dict:
    return {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": question}, {"type": "image", "image": image}]}
        ]
    }


def _data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


class CountingEngine:
    """Wraps the real RapidOCR engine to count its calls (thread-safe)."""

    def __init__(self) -> None:
        from rapidocr_onnxruntime import RapidOCR

        self.engine, self.calls, self._lock = RapidOCR(), 0, threading.Lock()

    def __call__(self, image: object) -> object:
        with self._lock:
            self.calls += 1
        return self.engine(image)


@pytest.fixture(scope="module")
def page() -> Image.Image:
    return _page()


@pytest.fixture(scope="module")
def reader() -> OCRAdapter:
    return OCRAdapter()


def test_registered_as_ocr_and_says_it_is_not_a_vlm() -> None:
    assert get_adapter_class("ocr") is OCRAdapter
    assert "not a VLM" in OCRAdapter().model and "NOT a VLM" in (ocr_module.__doc__ or "")


def test_reads_body_text_at_native_but_not_at_384(reader: OCRAdapter, page: Image.Image) -> None:
    native = reader.complete(_request(page), processor_kwargs={})
    small = reader.complete(_request(page), processor_kwargs={"size": {"longest_edge": 384}})
    assert contains(native.text, ["907.25"]) and contains(native.text, [TITLE])
    assert contains(small.text, [TITLE]), small.text  # 22 px at 384: still legible
    assert not contains(small.text, ["907.25"]), small.text
    assert native.model == reader.model and native.usage.prompt_tokens == 0
    assert native.usage.completion_tokens == len(native.text.splitlines()) >= 9


def test_lines_come_in_reading_order(reader: OCRAdapter, page: Image.Image) -> None:
    lines = reader.complete(_request(page), processor_kwargs={}).text.splitlines()
    rows = [next(i for i, line in enumerate(lines) if f"row {k}" in line) for k in (0, 4, 7)]
    assert lines[0].replace(" ", "") == TITLE.replace(" ", "") and rows == sorted(rows)


def test_processor_kwarg_and_pre_resized_pixels_read_the_same(page: Image.Image) -> None:
    reader = OCRAdapter(cache_size=0)
    by_kwarg = reader.complete(_request(_data_url(page)), processor_kwargs={"size": {"longest_edge": 512}})
    pre = page.resize(resized_size(*page.size, 512), Image.Resampling.LANCZOS)
    by_pixels = reader.complete(_request(pre), processor_kwargs={"size": {"longest_edge": 512}})
    assert by_kwarg.text == by_pixels.text and by_kwarg.text
    # never upscales: a longest_edge above the native size reads the page as it is
    tiny = page.resize((340, 440))
    assert (
        reader.complete(_request(tiny), processor_kwargs={"size": {"longest_edge": 2048}}).text
        == reader.complete(_request(tiny), processor_kwargs={}).text
    )


def test_router_pre_resize_and_kwarg_only_policies_agree(page: Image.Image) -> None:
    from resgate_router.policies.idefics3 import Idefics3Policy

    texts = []
    for pre_resize in (True, False):
        router = Router(
            FixedGate(1, "384,768,full"), adapter=OCRAdapter(), policy=Idefics3Policy(pre_resize=pre_resize)
        )
        out = router.complete(_request(_data_url(page)))
        assert out.record.images[0].rung == 768
        texts.append(out.response.text)
    assert texts[0] == texts[1] and contains(texts[0], ["907.25"])


def test_memoized_per_page_and_size_not_per_question(page: Image.Image) -> None:
    engine = CountingEngine()
    reader = OCRAdapter(engine=engine)
    first = reader.complete(_request(page, "total?"), processor_kwargs={"size": {"longest_edge": 384}})
    second = reader.complete(_request(page.copy(), "date?"), processor_kwargs={"size": {"longest_edge": 384}})
    assert engine.calls == 1 and first.text == second.text
    assert first.cached is False and second.cached is True  # a bench leaves memo answers out of latency
    third = reader.complete(_request(page, "total?"), processor_kwargs={"size": {"longest_edge": 512}})
    assert engine.calls == 2 and third.cached is False  # another size is another reading


def test_cache_is_bounded() -> None:
    engine = CountingEngine()
    reader = OCRAdapter(engine=engine, cache_size=1)
    blank = Image.new("RGB", (200, 100), "white")
    for edge in (64, 32, 64):
        reader.complete(_request(blank), processor_kwargs={"size": {"longest_edge": edge}})
    assert engine.calls == 3  # 64 was evicted by 32


def test_concurrent_calls_read_each_page_once_with_identical_results(page: Image.Image) -> None:
    engine = CountingEngine()
    reader = OCRAdapter(engine=engine)
    jobs = [(_request(page, f"question {i}"), {"size": {"longest_edge": 384 if i % 2 else 512}}) for i in range(8)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        texts = list(pool.map(lambda job: reader.complete(job[0], processor_kwargs=job[1]).text, jobs))
    assert engine.calls == 2  # concurrent requests for one (page, size) wait for the same reading
    assert set(texts[0::2]) == {texts[0]} and set(texts[1::2]) == {texts[1]} and texts[0] != texts[1]


def test_bad_requests_raise_typed_errors(reader: OCRAdapter) -> None:
    with pytest.raises(InputError, match="needs a request with an image"):
        reader.complete({"messages": [{"role": "user", "content": "hello"}]}, processor_kwargs={})
    with pytest.raises(ImageError, match="remote"):
        reader.complete(_request_url("https://example.com/page.png"), processor_kwargs={})
    with pytest.raises(ImageError):
        reader.complete(_request_url("data:image/png;base64,AAAA"), processor_kwargs={})
    with pytest.raises(InputError, match="longest_edge"):
        reader.complete(_request(Image.new("RGB", (8, 8))), processor_kwargs={"size": {"longest_edge": 0}})


def _request_url(url: str) -> dict:
    return {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]}


def test_through_the_router_with_a_fixed_gate(page: Image.Image) -> None:
    with Router(FixedGate(0, "card"), adapter=OCRAdapter(), family="idefics3") as router:
        out = router.complete(_request(_data_url(page)))
    assert out.record.images[0].rung == 384
    assert contains(out.response.text, [TITLE]) and not contains(out.response.text, ["907.25"])


def test_legibility_gate_and_reader_end_to_end(page: Image.Image) -> None:
    """Small body text: the gate keeps (nearly) every pixel but not SmolVLM's 2048 upscale; it stays legible."""
    from resgate_router.gate.legibility import LegibilityGate

    with Router(LegibilityGate("384,512,768,1024,full"), adapter=OCRAdapter(), family="idefics3") as router:
        out = router.complete(_request(_data_url(page)))
    assert out.record.images[0].rung == 1024
    assert contains(out.response.text, ["907.25"])
