"""Issue 9, fuzzing with hypothesis: image decoding (arbitrary bytes, mutated valid PNG/JPEG/GIF/WebP/
BMP/TIFF files), data URLs, the request parser and router (arbitrary JSON-like requests and
OpenAI-shaped ones with broken parts, for several families) up to the bytes the adapter would send,
and the proxy over real HTTP. Only typed errors (:class:`~resgate_router.errors.InputError`) or
valid results; never another exception, never a 5xx.

The CI profile is small and derandomized; ``HYPOTHESIS_PROFILE=long`` (``FUZZ_EXAMPLES``, default
5000) runs longer, and ``python -m benchmarks.fuzz`` records a long run.
"""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from resgate_router.adapters.openai_http import OpenAIAdapter

from resgate_router import Router
from resgate_router.errors import ImageError, InputError
from resgate_router.gate import FixedGate
from resgate_router.images import load_image, probe_size
from resgate_router.messages import decode_data_url

from .badimages import encode, exif_rotated
from .badinputs import data_url, marked_page
from .upstreams import COMPLETION, running_proxy

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
settings.register_profile(
    "fuzz-ci", max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=_QUIET
)
settings.register_profile(
    "fuzz-long",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "5000")),
    deadline=None,
    database=None,
    suppress_health_check=_QUIET,
)
FUZZ = settings.get_profile("fuzz-long" if os.environ.get("HYPOTHESIS_PROFILE") == "long" else "fuzz-ci")

MAX_PIXELS = 4_000_000  # keeps a mutated header's claimed size (decoded before it fails) cheap
FAMILIES = ("generic", "idefics3", "qwen2_vl", "internvl", "openai")


def _seeds() -> list[bytes]:
    page = marked_page(64, 48)
    frames = [page, Image.new("RGB", (64, 48), "black")]
    sixteen = Image.fromarray(np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20)
    palette = page.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    palette.info["transparency"] = 0
    return [
        encode(page),
        encode(page, "JPEG"),
        exif_rotated(page, 6),
        encode(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        encode(frames[0], "WEBP", save_all=True, append_images=frames[1:]),
        encode(page, "BMP"),
        encode(page, "TIFF"),
        encode(sixteen),
        encode(palette),
        encode(page.convert("CMYK"), "JPEG"),
    ]


SEEDS = _seeds()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid image file with a few bytes flipped, inserted, deleted, or cut off."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, max(0, len(data) - 1)))
        op = draw(st.sampled_from(["set", "insert", "delete", "truncate"]))
        if op == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            del data[at:]
    return bytes(data)


image_bytes = st.one_of(st.binary(max_size=256), mutated(), st.sampled_from(SEEDS))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20), st.sampled_from(["low", "high", "auto"])
)
json_like = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)
mimes = st.sampled_from(["image/png", "image/jpeg", "image/gif", "image/webp", "text/plain", "IMAGE/PNG", ""])
urls = st.one_of(
    st.builds(data_url, st.sampled_from(SEEDS)),  # valid: the happy path (decode, gate, resize, re-encode)
    st.builds(data_url, image_bytes, mimes),
    st.builds(lambda m, t: f"data:{m};base64,{t}", mimes, st.text(max_size=40)),
    st.sampled_from(
        [
            "file:///etc/passwd",
            "ftp://example.com/a.png",
            "http://127.0.0.1:9/a.png",
            "/etc/hostname",
            "c:x.png",
            "data:",
            "",
        ]
    ),
    st.text(max_size=30),
    json_like,
)
string_urls = urls.filter(lambda u: isinstance(u, str))
image_spec = st.fixed_dictionaries(
    {"url": urls}, optional={"detail": st.sampled_from(["low", "high", "auto"]) | json_like}
)
parts = st.one_of(
    st.fixed_dictionaries({"type": st.just("image_url"), "image_url": image_spec | urls}),
    st.fixed_dictionaries({"type": st.just("image")}, optional={"image": urls, "detail": json_like}),
    st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=40) | json_like}),
    json_like,
)
messages = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant"]) | json_like},
    optional={"content": st.lists(parts, max_size=3) | json_like},
)
overrides = st.sampled_from(["low", "medium", "high", "off", "auto", "full", "384", "0", 1, -1, True]) | json_like
requests = st.one_of(
    st.fixed_dictionaries(
        {"messages": st.lists(messages | json_like, max_size=3)},
        optional={
            "model": st.text(max_size=10) | json_like,
            "resgate": overrides,
            "max_tokens": st.integers(-2, 10) | json_like,
            "temperature": st.floats() | json_like,
            "metadata": json_like,
        },
    ),
    json_like,
)


def check_image(data: bytes) -> str:
    """``load_image`` and ``probe_size``: an upright RGB image within the limit, or an ImageError;
    when ``load_image`` succeeds, ``probe_size`` gave its size (its header-only promise)."""
    probed = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            probed = width, height = probe_size(data, max_pixels=MAX_PIXELS)
            assert width > 0 and height > 0 and width * height <= MAX_PIXELS
        except ImageError:
            pass
        try:
            image = load_image(data, max_pixels=MAX_PIXELS)
        except ImageError:
            return "error"
    assert image.mode == "RGB" and image.width > 0 and image.height > 0 and image.width * image.height <= MAX_PIXELS
    assert probed == image.size, (probed, image.size)
    return "ok"


def check_data_url(url: str) -> str:
    try:
        mime, data = decode_data_url(url)
    except ImageError:
        return "error"
    assert mime.startswith("image/") and isinstance(data, bytes)
    return "ok"


class RequestPipeline:
    """A request through ``Router.route`` (per family, FixedGate), then the adapter's payload and the
    HTTP request it would send: InputError, or a request whose images respect their plan (a rung of
    the ladder, or ``full``: the native size; never upscaled; within the rung for ``generic``)."""

    def __init__(self) -> None:
        self.routers = {
            family: Router(
                FixedGate(0),
                family=family,
                on_bad_input="raise",
                on_gate_error="raise",
                metrics=False,
                allow_local_paths=False,
                max_pixels=MAX_PIXELS,
            )
            for family in FAMILIES
        }
        self.adapter = OpenAIAdapter("http://127.0.0.1:9/v1", max_retries=0)

    def __call__(self, request: Any, family: str) -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                routed = self.routers[family].route(request)
                body = self.adapter.payload(routed.request, routed.processor_kwargs, stream=False)
                self.adapter.build_request(f"{self.adapter.base_url}/chat/completions", body, {})
            except InputError:
                return "error"
        rungs = self.routers[family].ladder.rungs
        for entry in routed.record.images:
            native, target, sent = entry.native, entry.rung, entry.sent
            assert target in rungs and all(0 < s <= n for s, n in zip(sent, native, strict=True)), entry
            if target == "full":
                assert sent == native, entry
            elif family == "generic":
                assert max(sent) <= target, entry
        return "ok"

    def close(self) -> None:
        self.adapter.close()


def fuzz_proxy():
    """The proxy (fixed class 0, generic family) on loopback in front of an always-OK upstream."""
    return running_proxy(fixed_class=0, family="generic", max_image_pixels=MAX_PIXELS, upstream_retries=0)


proxy_bodies = st.one_of(
    requests.map(
        lambda r: json.dumps({k: v for k, v in r.items() if k != "stream"} if isinstance(r, dict) else r).encode()
    ),
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


def check_proxy(client: httpx2.Client, url: str, body: bytes) -> str:
    """Only 200 (the upstream's answer) or a 400 in OpenAI's error format."""
    response = client.post(f"{url}/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    if response.status_code == 200:
        assert response.json() == COMPLETION
        return "ok"
    assert response.status_code == 400, (response.status_code, response.text[:300])
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    return "error"


# ------------------------------------------------------------------------------------------------ tests
@FUZZ
@given(data=image_bytes)
def test_fuzz_image_decoding(data: bytes) -> None:
    check_image(data)


@FUZZ
@given(url=string_urls)
def test_fuzz_data_urls(url: str) -> None:
    check_data_url(url)


@pytest.fixture(scope="module")
def pipeline() -> Iterator[RequestPipeline]:
    pipe = RequestPipeline()
    yield pipe
    pipe.close()


@FUZZ
@given(request=requests, family=st.sampled_from(FAMILIES))
def test_fuzz_request_parser_and_router(pipeline: RequestPipeline, request: Any, family: str) -> None:
    pipeline(request, family)


@pytest.fixture(scope="module")
def proxy() -> Iterator[tuple[httpx2.Client, str]]:
    with fuzz_proxy() as (url, _), httpx2.Client(timeout=60) as client:
        yield client, url


@FUZZ
@given(body=proxy_bodies)
def test_fuzz_proxy(proxy: tuple[httpx2.Client, str], body: bytes) -> None:
    check_proxy(*proxy, body)


def test_mutations_reach_both_outcomes() -> None:
    """The image fuzzer is not vacuous: its seeds decode, cut-off seeds are refused, and ``mutated()``
    (derandomized, 100 examples) yields both files that still decode and files that are refused."""
    assert all(check_image(seed) == "ok" for seed in SEEDS)
    assert all(check_image(seed[: len(seed) // 2]) == "error" for seed in SEEDS if not seed.startswith(b"BM"))
    assert load_image(SEEDS[2]).size == (48, 64)  # the EXIF-6 seed decodes upright
    outcomes: Counter[str] = Counter()

    @settings(settings.get_profile("fuzz-ci"), max_examples=100)
    @given(data=mutated())
    def draw(data: bytes) -> None:
        outcomes[check_image(data)] += 1

    draw()
    assert outcomes["ok"] > 0 and outcomes["error"] > 0, outcomes
