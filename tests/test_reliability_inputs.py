"""Issue 9, bad inputs: every kind of tests/badinputs.py through the library (Router with a real HTTP
adapter, and a wrapped ``openai`` client), the CLI and the proxy (real uvicorn), each in front of a
real loopback upstream. Each gives a typed error (400 at the proxy, never reaching the upstream) or a
correct result (the upstream receives every image upright at the expected size), never a crash, a
hang, an untyped exception or a 5xx."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import httpx2
import numpy as np
import openai
import pytest
from PIL import Image
from resgate_router.adapters.openai_http import OpenAIAdapter

from resgate_router import Router
from resgate_router.cli import main as cli_main
from resgate_router.errors import ImageError, InputError
from resgate_router.gate import FixedGate
from resgate_router.gate.legibility import LegibilityGate
from resgate_router.messages import decode_data_url
from resgate_router.policies import get_policy, scaled_size
from resgate_router.server import ServerSettings, create_app
from resgate_router.testing import make_document_image
from resgate_router.tools.servers import serve_app

from .badimages import encode
from .badinputs import MAX_BODY, BadInput, corpus
from .logs import read_records
from .upstreams import COMPLETION, FaultServer

LOW = 384  # the card ladder's class 0: what FixedGate(0) and the proxy's fixed_class=0 send


def kinds(surface: str) -> list:
    return [pytest.param(k, id=k.name) for k in corpus() if surface in k.surfaces]


def calls(upstream: FaultServer, action) -> tuple[object, list[dict]]:
    """Run ``action``; return its result (or the exception it raised) and the bodies the upstream got."""
    before = len(upstream.bodies)
    try:
        result = action()
    except Exception as exc:  # the caller checks which
        result = exc
    return result, upstream.bodies[before:]


def image_urls(body: dict) -> list:
    messages = body["messages"] if isinstance(body.get("messages"), list) else []
    contents = [m["content"] for m in messages if isinstance(m, dict) and isinstance(m.get("content"), list)]
    parts = [p for content in contents for p in content if isinstance(p, dict) and p.get("type") == "image_url"]
    return [p["image_url"].get("url") if isinstance(p.get("image_url"), dict) else None for p in parts]


def decode(url: str) -> Image.Image:
    mime, data = decode_data_url(url)
    assert url.startswith(f"data:{mime};base64,")
    return Image.open(io.BytesIO(data))


def check_sent(kind: BadInput, body: dict, targets: list) -> None:
    """The upstream got every image: at ``"full"`` the client's bytes untouched, at a rung resized
    to the expected size, upright."""
    urls, originals = image_urls(body), image_urls(kind.chat())
    assert len(urls) == len(originals) == kind.images
    for url, original, target in zip(urls, originals, targets):
        if target == "full":
            assert url == original
            continue
        image = decode(url)
        assert image.size == scaled_size(*kind.size, target)
        if kind.marker == "top-left":
            grey = np.asarray(image.convert("L"), dtype=np.float64)
            h, w = grey.shape
            assert grey[: h // 3, : w // 3].mean() < 60 and grey[-h // 3 :, -w // 3 :].mean() > 200


def same_text(sent: dict, request: dict) -> None:
    """The question arrives untouched (long, empty or unusual text is the downstream's business)."""
    texts = [[p for p in m["content"] if p.get("type") == "text"] for m in request["messages"]]
    assert [[p for p in m["content"] if p.get("type") == "text"] for m in sent["messages"]] == texts


# ---------------------------------------------------------------------------------------------- library
@pytest.fixture(scope="module")
def router(upstream):
    gate = LegibilityGate(policy=get_policy("generic"))  # a real gate that looks at every image
    adapter = OpenAIAdapter(upstream.url("ok"), max_retries=0)
    with Router(gate, adapter, family="generic", on_bad_input="raise", on_gate_error="raise", metrics=False) as r:
        yield r


@pytest.mark.parametrize("kind", kinds("library"))
def test_library_router(kind: BadInput, router, upstream):
    result, bodies = calls(upstream, lambda: router.complete(kind.chat()))
    if kind.error is not None:
        assert isinstance(result, kind.error), repr(result)
        assert bodies == []  # refused before anything reached the upstream
        return
    assert not isinstance(result, Exception), repr(result)
    assert result.response.choices[0]["message"]["content"] == "ok" and len(bodies) == 1
    record = result.record
    if kind.forwarded:
        assert bodies[0]["messages"] == kind.chat()["messages"] and record.status == "passthrough", record
        return
    assert record.status == "routed" and [e.native for e in record.images] == [list(kind.size)] * kind.images
    check_sent(kind, bodies[0], [e.rung for e in record.images])
    if kind.image is None:
        same_text(bodies[0], kind.chat())


def wrap_kinds() -> list:
    """The library kinds an ``openai`` client's ``create(**request)`` can take (a dict, not streamed)."""
    requests = [(p, p.values[0].chat()) for p in kinds("library")]
    return [p for p, request in requests if isinstance(request, dict) and not request.get("stream")]


@pytest.mark.parametrize("kind", wrap_kinds())
def test_library_wrap_fails_open_like_the_plain_client(kind: BadInput, upstream):
    """A wrapped client (default fail-open) behaves as the plain one, except that images are resized."""
    plain = openai.OpenAI(base_url=upstream.url("ok"), api_key="unused", max_retries=0)
    wrapped = Router(FixedGate(0), family="generic", metrics=False).wrap(plain)
    request = kind.chat()
    expected, plain_bodies = calls(upstream, lambda: plain.chat.completions.create(**request))
    result, bodies = calls(upstream, lambda: wrapped.chat.completions.create(**request))
    plain.close()
    if isinstance(expected, Exception):  # the plain client refuses it too: the same way
        assert type(result) is type(expected) and bodies == plain_bodies == []
        return
    assert not isinstance(result, Exception), repr(result)
    assert result.choices[0].message.content == "ok" and len(bodies) == len(plain_bodies) == 1
    assert without_images(bodies[0]) == without_images(plain_bodies[0])  # only images may differ
    if kind.size is not None:
        check_sent(kind, bodies[0], [LOW] * kind.images)
    elif kind.error is not None and issubclass(kind.error, ImageError):  # fails open: sent untouched
        assert bodies == plain_bodies


def without_images(body: dict) -> dict:
    text = json.dumps(body)
    for url in image_urls(body):
        if isinstance(url, str):
            text = text.replace(json.dumps(url)[1:-1], "<image>")
    return json.loads(text)


# ---------------------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    page = root / "page.png"
    page.write_bytes(encode(make_document_image(600, 800, lines=8, seed=5)))
    return root, page


def cli_args(kind: BadInput, files) -> list[str]:
    root, page = files
    image = str(page)
    if kind.image is not None:
        image = str(root / f"{kind.name}.img")
        (root / f"{kind.name}.img").write_bytes(kind.image)
    image = kind.cli.get("image", image)
    question = kind.cli.get("question", "What is the total?")
    return ["route", "--gate", "legibility", "--image", image, "--question", question, "--family", "generic", "--json"]


@pytest.mark.parametrize("kind", kinds("cli"))
def test_cli(kind: BadInput, files, capsys):
    code = cli_main(cli_args(kind, files))
    out, err = capsys.readouterr()
    if kind.error is not None and not kind.cli_result:
        assert code == 2 and out == ""
        assert err.count("\n") == 1 and err.startswith("resgate route: error: ") and "Traceback" not in err
        return
    assert code == 0 and err == ""
    report = json.loads(out)
    size = kind.size if kind.image is not None else (600, 800)
    assert report["native_long_side"] == max(size)
    target = report["target"]
    assert tuple(report["sent"]) == (size if target == "full" else scaled_size(*size, target))


def test_cli_console_script_on_bad_bytes_and_non_utf8_arguments(tmp_path):
    """The real console entry point: a bomb refused in one line; a non-UTF-8 argv question answered."""
    bomb, page = tmp_path / "bomb.png", tmp_path / "page.jpg"
    bomb.write_bytes(next(k for k in corpus() if k.name == "bomb-png-60000").image)
    page.write_bytes(next(k for k in corpus() if k.name == "jpeg-exif-6").image)
    base = [sys.executable, "-m", "resgate_router.cli", "route", "--gate", "legibility", "--json"]
    refused = subprocess.run([*base, "--image", bomb, "--question", "x"], capture_output=True, timeout=120)
    assert refused.returncode == 2 and refused.stdout == b""
    assert refused.stderr.startswith(b"resgate route: error: ") and refused.stderr.count(b"\n") == 1
    assert b"decompression bomb" in refused.stderr
    answered = subprocess.run([*base, "--image", page, "--question", b"tot\xff\xfe?"], capture_output=True, timeout=120)
    assert answered.returncode == 0 and answered.stderr == b""
    assert json.loads(answered.stdout)["native_long_side"] == 600


# ---------------------------------------------------------------------------------------------- proxy
@pytest.fixture(scope="module")
def proxy(upstream, tmp_path_factory):
    log = tmp_path_factory.mktemp("proxy-log") / "savings.jsonl"
    settings = ServerSettings(
        upstream=upstream.url("ok"),
        fixed_class=0,
        family="generic",
        max_body_bytes=MAX_BODY,
        upstream_retries=0,
        gate_max_wait_ms=1,
        log_path=str(log),
    )
    with serve_app(create_app(settings)) as url:
        yield url, log


#: the savings-log status each request sent to the proxy must leave, in order
EXPECTED_RECORDS: list[str] = []


@pytest.mark.parametrize("kind", kinds("proxy"))
def test_proxy(kind: BadInput, proxy, upstream):
    url, _ = proxy
    EXPECTED_RECORDS.append("error" if kind.error else "passthrough" if kind.forwarded else "routed")
    post = lambda: httpx2.post(  # noqa: E731
        f"{url}/v1/chat/completions",
        content=kind.http_body(),
        headers={"content-type": "application/json"},
        timeout=60,
    )
    response, bodies = calls(upstream, post)
    assert isinstance(response, httpx2.Response), repr(response)
    if kind.error is not None:
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert set(error) >= {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
        assert error["message"] and "Traceback" not in error["message"]
        assert bodies == []
        return
    assert response.status_code == 200, response.text
    assert response.json() == COMPLETION and len(bodies) == 1
    if kind.forwarded:
        assert bodies[0]["messages"] == kind.chat()["messages"]
        return
    check_sent(kind, bodies[0], [LOW] * kind.images)
    if kind.image is None:
        same_text(bodies[0], kind.chat())


def test_proxy_still_answers_after_the_whole_corpus_and_logged_every_request(proxy, upstream):
    """Runs after the parametrized cases above (file order): the server is up and still routes, and
    the savings log holds exactly one record per request, client errors included, in order."""
    url, log = proxy
    assert httpx2.get(f"{url}/healthz", timeout=10).json() == {"status": "ok"}
    kind = next(k for k in corpus() if k.name == "jpeg-exif-6")
    response, bodies = calls(upstream, lambda: httpx2.post(f"{url}/v1/chat/completions", json=kind.chat(), timeout=60))
    assert response.status_code == 200
    check_sent(kind, bodies[0], [LOW])
    expected = [*EXPECTED_RECORDS, "routed"]
    assert [record["status"] for record in read_records(log, len(expected))] == expected


def test_the_corpus_covers_the_issue():
    """At least 30 kinds; every item of the issue's list has one; every surface gets most kinds."""
    items = {k.covers for k in corpus()}
    required = {
        "truncated PNG",
        "truncated JPEG",
        "wrong magic",
        "zero bytes",
        "decompression bomb",
        "1x1",
        "extreme aspect ratio",
        "16-bit",
        "CMYK",
        "palette with transparency",
        "animated GIF",
        "animated WebP",
        "EXIF rotation",
        "SVG bytes",
        "PDF bytes",
        "invalid base64",
        "wrong data-URL MIME",
        "file:// URL",
        "ftp:// URL",
        "oversized body",
        "malformed JSON",
        "missing fields",
        "wrong types",
        "very long question",
        "non-UTF-8",
        "many images in one request",
    }
    assert required <= items and len(corpus()) >= 30
    assert all(issubclass(k.error, InputError) for k in corpus() if k.error is not None)
    surfaces = {surface: len(kinds(surface)) for surface in ("library", "cli", "proxy")}
    assert surfaces == {"library": 56, "cli": 37, "proxy": 59} and len(wrap_kinds()) == 53, surfaces
