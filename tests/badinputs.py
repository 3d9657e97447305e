"""The bad-input corpus (issue 9): every kind of input a user or a hostile client may send, generated
at test time (no binaries are committed), each with the outcome resgate-router must give.

A kind is an image (encoded bytes, sent as a data URL, or as a file to the CLI) or a request (a chat
request as a Python object for the library, a raw HTTP body for the proxy). Its outcome is a typed
error (``error``: an :class:`~resgate_router.errors.InputError` subclass, a 400 at the proxy), a
correct result (``size``: the upright size of each image the downstream must receive, resized), or
``forwarded``: a field resgate-router does not own, passed to the upstream untouched.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
from PIL import Image

from resgate_router.errors import ImageError, ImageTooLargeError, InputError
from resgate_router.testing import make_document_image

from .badimages import corrupt_inputs, encode, exif_rotated, png_with_header_size, unusual_modes

__all__ = ["BadInput", "corpus", "chat", "data_url", "marked_page", "QUESTION", "MODEL"]

QUESTION = "What is the total amount?"
MODEL = "m"


@dataclass(frozen=True)
class BadInput:
    name: str
    covers: str  # the item of the list it stands for
    image: bytes | None = None  # an image kind: the encoded file
    mime: str = "image/png"
    request: Any = None  # a request kind: the chat request (None: no Python form, proxy only)
    body: bytes | None = None  # a raw HTTP body (default: ``request`` as JSON)
    error: type[InputError] | None = None  # the typed error expected (None: a result)
    size: tuple[int, int] | None = None  # upright size of each image sent (a correct result)
    images: int = 1  # images the downstream must receive
    forwarded: bool = False  # passed upstream untouched (fields resgate-router does not own)
    cli: dict[str, Any] = field(default_factory=dict)  # CLI form: {"image": path str} and/or {"question": str}
    cli_result: bool = False  # the CLI answers it (the question only reaches the gate, which ignores it)
    marker: str | None = None  # "top-left": the upright image is dark in its top-left quadrant
    # the damage lies past the header and the first frame: a router that needs no pixels (the proxy's
    # constant decision here, no resize) never decodes it, and passes it on for the upstream to refuse
    past_the_header: bool = False

    def chat(self) -> Any:
        """The request the library gets (images as a data URL)."""
        if self.image is not None:
            return chat(data_url(self.image, self.mime))
        return self.request

    def http_body(self) -> bytes:
        """The proxy's body: stdlib JSON, which (unlike httpx's encoder) writes NaN and lone surrogates."""
        if self.body is not None:
            return self.body
        return json.dumps(self.chat()).encode("ascii")

    @property
    def surfaces(self) -> set[str]:
        out = set() if self.past_the_header else {"proxy"}
        if self.image is not None or self.request is not None:
            out.add("library")
        if self.image is not None or self.cli:
            out.add("cli")
        return out


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def chat(*urls: Any, question: str = QUESTION, **extra: Any) -> dict[str, Any]:
    content: list[Any] = [{"type": "image_url", "image_url": {"url": url}} for url in urls]
    content.append({"type": "text", "text": question})
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": 4, **extra}


def marked_page(width: int, height: int) -> Image.Image:
    """A white page with a black top-left quadrant: shows whether an image arrives upright."""
    page = Image.new("RGB", (width, height), "white")
    page.paste((0, 0, 0), (0, 0, width // 2, height // 2))
    return page


def _patched(data: bytes, offset: int, fmt: str, *values: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


def _jpeg_bomb() -> bytes:
    """A tiny JPEG whose SOF0 header claims 65000 x 65000 pixels."""
    data = encode(Image.new("L", (8, 8)), "JPEG")
    sof = data.index(b"\xff\xc0")
    return _patched(data, sof + 5, ">HH", 65000, 65000)


def _gif_bomb() -> bytes:
    """A tiny GIF whose logical screen claims 65535 x 65535 pixels."""
    return _patched(encode(Image.new("P", (1, 1)), "GIF"), 6, "<HH", 65535, 65535)


def _animated(fmt: str) -> bytes:
    frames = [marked_page(120, 80), Image.new("RGB", (120, 80), "black"), Image.new("RGB", (120, 80), "white")]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=50, loop=0)


def _gif_cut_in_second_frame() -> bytes:
    """Counting frames reads past the first: a cut second-frame descriptor once escaped as struct.error."""
    data = _animated("GIF")
    return data[: data.rindex(b",") + 3]


def _jpeg_corrupt_exif() -> bytes:
    """An EXIF block whose TIFF header is garbage: Pillow ignores it, so the image is read as stored."""
    data = exif_rotated(marked_page(400, 600), 6)
    at = data.index(b"Exif\x00\x00") + 6
    return data[:at] + b"XX" + data[at + 2 :]


def _image_kinds() -> list[BadInput]:
    bad = corrupt_inputs()
    modes = unusual_modes()  # 300 x 400 pages
    page = (300, 400)
    rng = np.random.default_rng(0)
    errors = [
        ("zero-bytes", "zero bytes", bad["empty"], "image/png"),
        ("truncated-png", "truncated PNG", bad["truncated-png"], "image/png"),
        ("truncated-jpeg", "truncated JPEG", bad["truncated-jpeg"], "image/jpeg"),
        ("wrong-magic", "wrong magic", bad["wrong-magic"], "image/png"),
        ("plain-text", "wrong magic", bad["text"], "image/png"),
        ("random-bytes", "wrong magic", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(), "image/png"),
        ("svg", "SVG bytes", bad["svg"], "image/svg+xml"),
        ("pdf", "PDF bytes", bad["pdf"], "image/png"),
        ("png-zero-width", "huge/zero dimensions", png_with_header_size(0, 10), "image/png"),
        ("gif-cut-in-second-frame", "truncated GIF", _gif_cut_in_second_frame(), "image/gif"),
    ]
    bombs = [
        ("bomb-png-60000", png_with_header_size(60000, 60000), "image/png"),
        ("bomb-png-9000", png_with_header_size(9000, 9000), "image/png"),  # over our limit, under PIL's
        ("bomb-jpeg", _jpeg_bomb(), "image/jpeg"),
        ("bomb-gif", _gif_bomb(), "image/gif"),
    ]
    upright = marked_page(600, 400)
    results = [
        ("one-by-one", "1x1", encode(Image.new("RGB", (1, 1), "white")), "image/png", (1, 1)),
        ("wide-8000x2", "extreme aspect ratio", encode(Image.new("L", (8000, 2), 255)), "image/png", (8000, 2)),
        ("tall-2x8000", "extreme aspect ratio", encode(Image.new("L", (2, 8000), 255)), "image/png", (2, 8000)),
        (
            "large-solid-4000x3000",
            "huge dimensions, tiny file",
            encode(Image.new("L", (4000, 3000), 255)),
            "image/png",
            (4000, 3000),
        ),
        ("png-16bit", "16-bit", encode(modes["I;16"]), "image/png", page),
        ("jpeg-cmyk", "CMYK", encode(modes["CMYK"], "JPEG"), "image/jpeg", page),
        ("png-palette-transparent", "palette with transparency", encode(modes["P-transparent"]), "image/png", page),
        ("png-rgba", "palette with transparency", encode(modes["RGBA"]), "image/png", page),
        ("png-1bit", "unusual mode", encode(modes["1"]), "image/png", page),
        ("tiff-float", "unusual mode", encode(modes["F"], "TIFF"), "image/tiff", page),
        ("jpeg-grayscale", "unusual mode", encode(modes["L"], "JPEG"), "image/jpeg", page),
        ("bmp", "other format", encode(make_document_image(500, 300, lines=4, seed=4), "BMP"), "image/bmp", (500, 300)),
        ("jpeg-corrupt-exif", "EXIF rotation", _jpeg_corrupt_exif(), "image/jpeg", (400, 600)),
    ]
    animated = [("gif-animated", "animated GIF", "GIF"), ("webp-animated", "animated WebP", "WEBP")]
    kinds = [
        BadInput(n, c, image=d, mime=m, error=ImageError, past_the_header=n == "gif-cut-in-second-frame")
        for n, c, d, m in errors
    ]
    kinds += [BadInput(n, "decompression bomb", image=d, mime=m, error=ImageTooLargeError) for n, d, m in bombs]
    kinds += [BadInput(n, c, image=d, mime=m, size=s) for n, c, d, m, s in results]
    # the first frame (the marked page) must be the one sent, not a later (black or white) frame
    kinds += [
        BadInput(n, c, image=_animated(f), mime=f"image/{f.lower()}", size=(120, 80), marker="top-left")
        for n, c, f in animated
    ]
    # EXIF orientation 6 (rotate 90 clockwise to view) and 3 (180): stored turned, must arrive upright
    turned = {6: upright.rotate(90, expand=True), 3: upright.rotate(180)}
    kinds += [
        BadInput(
            f"jpeg-exif-{o}",
            "EXIF rotation",
            image=exif_rotated(im, o),
            mime="image/jpeg",
            size=(600, 400),
            marker="top-left",
        )
        for o, im in turned.items()
    ]
    return kinds


def _request_kinds() -> list[BadInput]:
    page = make_document_image(600, 800, lines=8, seed=5)
    good = data_url(encode(page))
    png_b64 = base64.b64encode(encode(page)).decode("ascii")
    long_question = "Which line holds the total? " * 8000  # 224 000 characters
    nested = "[" * 100_000 + "]" * 100_000
    deep: list = []
    for _ in range(400):  # deep, yet within what JSON parsers and encoders accept
        deep = [deep]
    message = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": good}}]}
    return [
        BadInput(
            "invalid-base64", "invalid base64", request=chat("data:image/png;base64,@@not*base64@@"), error=ImageError
        ),
        BadInput("data-url-not-base64", "invalid base64", request=chat("data:image/png,rawbytes"), error=ImageError),
        BadInput(
            "data-url-wrong-mime",
            "wrong data-URL MIME",
            request=chat(f"data:text/plain;base64,{png_b64}"),
            error=ImageError,
        ),
        *[
            BadInput(name, covers, request=chat(url), error=ImageError, cli={"image": url})
            for name, covers, url in [
                ("url-file-scheme", "file:// URL", "file:///etc/passwd"),
                ("url-ftp-scheme", "ftp:// URL", "ftp://example.com/a.png"),
                ("url-local-file", "local path", "/etc/hostname"),
            ]
        ],
        BadInput("image-url-wrong-type", "wrong types", request=chat(12345), error=ImageError),
        BadInput(
            "image-part-without-url",
            "missing fields",
            request={"model": MODEL, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            error=ImageError,
        ),
        BadInput(
            "malformed-json",
            "malformed JSON",
            body=b'{"model": "m", "messages": [{"role": "user", "content": ',
            error=InputError,
        ),
        BadInput("body-not-object", "malformed JSON", request=[{"role": "user", "content": "hi"}], error=InputError),
        BadInput(
            "deeply-nested-json",
            "malformed JSON",
            body=f'{{"model": "m", "messages": {nested}}}'.encode(),
            error=InputError,
        ),
        BadInput("nan-in-json", "malformed JSON", request=chat(good, top_p=float("nan")), error=InputError),
        BadInput(
            "non-utf8-body",
            "non-UTF-8",
            body=b'{"model": "m", "messages": [{"role": "user", "content": "\xff\xfe caf\xe9"}]}',
            error=InputError,
        ),
        BadInput(
            "lone-surrogate",
            "non-UTF-8",
            request=chat(good, question="total \ud800?"),
            error=InputError,
            cli={"question": "total \udcff?"},
            cli_result=True,
        ),
        BadInput(
            "deep-but-valid-json",
            "malformed JSON",
            request={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "metadata": deep},
            forwarded=True,
        ),
        BadInput(
            "stream-invalid-base64",
            "invalid base64",
            request=chat("data:image/png;base64,@@", stream=True),
            error=ImageError,
        ),
        BadInput(
            "stream-infinity-in-json",
            "malformed JSON",
            request=chat(good, stream=True, top_p=float("inf")),
            error=InputError,
        ),
        BadInput("missing-messages", "missing fields", request={"model": MODEL, "max_tokens": 4}, error=InputError),
        BadInput("empty-messages", "missing fields", request={"model": MODEL, "messages": []}, error=InputError),
        BadInput("messages-wrong-type", "wrong types", request={"model": MODEL, "messages": "hello"}, error=InputError),
        BadInput("message-not-object", "wrong types", request={"model": MODEL, "messages": [42]}, error=InputError),
        BadInput("max-tokens-wrong-type", "wrong types", request=chat(good, max_tokens="many"), error=InputError),
        BadInput(
            "content-wrong-type",
            "wrong types",
            request={"model": MODEL, "messages": [{"role": "user", "content": 42}]},
            forwarded=True,
        ),
        BadInput(
            "detail-wrong-type",
            "wrong types",
            request={
                "model": MODEL,
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": good, "detail": 5}}]}
                ],
            },
            size=(600, 800),
        ),
        BadInput("bad-override", "wrong types", request=chat(good, resgate="huge"), error=InputError),
        BadInput(
            "very-long-question",
            "very long question",
            request=chat(good, question=long_question),
            size=(600, 800),
            cli={"question": long_question},
        ),
        BadInput(
            "empty-question", "missing fields", request=chat(good, question=""), size=(600, 800), cli={"question": ""}
        ),
        BadInput(
            "many-images",
            "many images in one request",
            request={"model": MODEL, "messages": [message] * 48, "max_tokens": 4},
            size=(600, 800),
            images=48,
        ),
        BadInput(
            "oversized-body", "oversized body", body=b'{"messages": "' + b"x" * OVERSIZED + b'"}', error=InputError
        ),
    ]


#: The proxy under test refuses bodies over this many bytes (``ServerSettings.max_body_bytes``).
MAX_BODY = 4 * 1024 * 1024
OVERSIZED = MAX_BODY + 1024


@cache
def corpus() -> tuple[BadInput, ...]:
    kinds = (*_image_kinds(), *_request_kinds())
    assert len({k.name for k in kinds}) == len(kinds), "kind names must be unique"
    return kinds
