"""Parsing image parts of chat requests: every bad form is a typed error."""

from __future__ import annotations

import base64

import pytest

from resgate_router import ImageError, InputError
from resgate_router.messages import decode_data_url, encode_data_url, find_images, has_images
from resgate_router.testing import make_document_image

from .badimages import encode

PAGE = make_document_image(300, 400, lines=4, seed=1)


def request(url, text="Q?"):
    return {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": text}],
            }
        ]
    }


def test_data_url_path_and_pil(tmp_path):
    path = tmp_path / "page.png"
    path.write_bytes(encode(PAGE))
    for url in (encode_data_url(PAGE), str(path), PAGE):
        (ref,) = find_images(request(url, "Total?"))
        assert ref.native == (300, 400) and ref.question == "Total?"
    (ref,) = find_images({"messages": [{"role": "user", "content": [{"type": "image", "image": PAGE}]}]})
    assert ref.kind == "pil" and ref.question == ""


@pytest.mark.parametrize(
    "url,match",
    [
        ("data:image/png;base64,@@@notbase64", "base64"),
        ("data:text/plain;base64," + base64.b64encode(b"hello").decode(), "MIME"),
        ("data:image/png," + "abc", "data URL"),
        ("file:///etc/passwd", "scheme"),
        ("ftp://example.com/a.png", "scheme"),
        ("", "non-empty"),
        ("data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n broken").decode(), "corrupt|recognised"),
    ],
)
def test_bad_image_urls(url, match):
    with pytest.raises(ImageError, match=match):
        find_images(request(url))


def test_local_paths_can_be_refused(tmp_path):
    path = tmp_path / "page.png"
    path.write_bytes(encode(PAGE))
    with pytest.raises(ImageError, match="not allowed"):
        find_images(request(str(path)), allow_local_paths=False)


@pytest.mark.parametrize("bad", [{}, {"messages": "x"}, {"messages": ["not a message"]}])
def test_malformed_requests(bad):
    with pytest.raises(InputError):
        find_images(bad)


def test_has_images_and_round_trip():
    assert not has_images({"messages": [{"role": "user", "content": "plain"}]})
    assert has_images(request(encode_data_url(PAGE)))
    mime, data = decode_data_url(encode_data_url(PAGE, "image/jpeg"))
    assert mime == "image/jpeg" and data[:2] == b"\xff\xd8"
