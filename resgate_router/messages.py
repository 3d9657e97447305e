"""OpenAI-style chat requests: find the images (with the question of their turn) and rewrite them.

Image parts may be ``{"type": "image_url", "image_url": {"url": ...}}`` with a data URL, a local
path (when allowed) or a PIL image as ``url``, or ``{"type": "image", "image": <PIL or path>}``.
Remote ``http(s)://`` URLs are left untouched and not gated (the router does not fetch them).
"""

from __future__ import annotations

import base64
import binascii
import copy
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from PIL import Image

from .errors import ImageError, InputError
from .gate.resample import resize_image, share_renditions
from .images import DEFAULT_MAX_PIXELS, load_image, probe_size
from .png import encode_png

__all__ = [
    "ImageRef",
    "find_images",
    "remote_urls",
    "decode_data_url",
    "encode_data_url",
    "rewrite_images",
    "has_images",
    "to_wire",
]

_REMOTE = ("http://", "https://")
#: keys whose string values an OpenAI-compatible server (vLLM, ...) fetches: image_url / video_url /
#: audio_url parts (chat), input_image (responses), and our own ``image`` parts
_URL_KEYS = frozenset({"url", "image_url", "video_url", "audio_url", "file_url", "image"})


@dataclass
class ImageRef:
    """One image of a request. Its size comes from the header; the pixels are decoded on first use of
    ``image`` (so a request that needs no gate and no resize never decodes them). Remote URLs have
    neither."""

    message: int
    part: int
    kind: str  # "data", "path", "pil" or "remote"
    question: str
    detail: str | None
    source: Any = None  # encoded bytes, a Path or a PIL image
    mime: str | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    _native: tuple[int, int] | None = None
    _image: Image.Image | None = None

    def __post_init__(self) -> None:
        if self.source is not None:
            self._native = probe_size(self.source, max_pixels=self.max_pixels)

    @property
    def local(self) -> bool:
        return self.source is not None

    @property
    def image(self) -> Image.Image | None:
        """Upright 8-bit RGB pixels (decoded once); raises ImageError for corrupt data."""
        if self._image is None and self.source is not None:
            self._image = load_image(self.source, max_pixels=self.max_pixels)
            self._native = self._image.size
            if self.kind != "pil":  # our own decode, which nobody else holds: the gate and the
                share_renditions(self._image)  # pre-resize may shrink it to one size, computed once
        return self._image

    @property
    def decoded(self) -> bool:
        return self._image is not None

    @property
    def native(self) -> tuple[int, int]:
        assert self._native is not None, "remote images have no size"
        return self._native


def _parts(message: Any, index: int) -> list[Any]:
    if not isinstance(message, dict):
        raise InputError(f"messages[{index}] must be an object, got {type(message).__name__}")
    content = message.get("content")
    return content if isinstance(content, list) else []


def _image_source(part: dict[str, Any]) -> tuple[Any, str | None] | None:
    if part.get("type") == "image_url":
        spec = part.get("image_url")
        if isinstance(spec, dict):
            return spec.get("url"), spec.get("detail")
        return spec, None
    if part.get("type") == "image":
        return part.get("image"), part.get("detail")
    return None


def has_images(request: dict[str, Any]) -> bool:
    messages = request.get("messages")
    if not isinstance(messages, list):
        return False
    return any(
        isinstance(p, dict) and _image_source(p) is not None
        for i, m in enumerate(messages)
        if isinstance(m, dict)
        for p in _parts(m, i)
    )


def remote_urls(body: Any) -> list[str]:
    """Every ``http(s)`` URL in a request body that a server might fetch: the string value of a URL
    key (``url``, ``image_url``, ``video_url``, ...) at any depth, whatever the endpoint or part type."""
    found, stack = [], [body]
    while stack:  # iterative: a body nested thousands deep is still checked
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            if isinstance(value, (dict, list)):
                stack.append(value)
            elif key in _URL_KEYS and isinstance(value, str) and value[:16].lstrip()[:8].lower().startswith(_REMOTE):
                found.append(value)
    return found


def find_images(
    request: dict[str, Any],
    *,
    allow_local_paths: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    fetcher: Any = None,
) -> list[ImageRef]:
    """Every image part with the text of its message (sizes from headers; pixels decode on use).
    Remote ``http(s)`` URLs are fetched with ``fetcher`` (a :class:`RemoteImageFetcher`) when given,
    else left as remote refs that are neither fetched nor gated."""
    messages = request.get("messages")
    if not isinstance(messages, list):
        raise InputError("request must have a 'messages' list")
    found: list[ImageRef] = []
    for m_index, message in enumerate(messages):
        parts = _parts(message, m_index)
        question = " ".join(
            p.get("text", "")
            for p in parts
            if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        ).strip()
        for p_index, part in enumerate(parts):
            source = _image_source(part) if isinstance(part, dict) else None
            if source is None:
                continue
            value, detail = source
            ref = _decode(value, detail, m_index, p_index, question, allow_local_paths, max_pixels)
            if ref.kind == "remote" and fetcher is not None:
                ref = ImageRef(
                    m_index, p_index, "fetched", question, ref.detail, fetcher.fetch(value), max_pixels=max_pixels
                )
            found.append(ref)
    return found


def _decode(value: Any, detail: Any, m: int, p: int, question: str, allow_paths: bool, max_pixels: int) -> ImageRef:
    detail = detail if isinstance(detail, str) else None
    where = f"messages[{m}].content[{p}]"
    if isinstance(value, Image.Image):
        return ImageRef(m, p, "pil", question, detail, value, max_pixels=max_pixels)
    if not isinstance(value, str) or not value:
        raise ImageError(f"{where}: image url must be a non-empty string")
    if value.startswith("data:"):
        mime, data = decode_data_url(value, where)
        return ImageRef(m, p, "data", question, detail, data, mime, max_pixels=max_pixels)
    if value.startswith(_REMOTE):
        return ImageRef(m, p, "remote", question, detail)
    scheme = urlsplit(value).scheme
    if len(scheme) > 1:  # file:, ftp:, ... (a one-letter "scheme" is a Windows drive)
        raise ImageError(f"{where}: unsupported image URL scheme {scheme!r}")
    if not allow_paths:
        raise ImageError(f"{where}: local image paths are not allowed here")
    return ImageRef(m, p, "path", question, detail, Path(value), max_pixels=max_pixels)


def decode_data_url(url: str, where: str = "image") -> tuple[str, bytes]:
    """(MIME type, bytes) of a base64 ``data:image/...`` URL."""
    header, sep, payload = url.partition(",")
    if not sep or not header.endswith(";base64"):
        raise ImageError(f"{where}: data URL must be 'data:image/<type>;base64,<data>'")
    mime = header[len("data:") : -len(";base64")].lower()
    if not mime.startswith("image/"):
        raise ImageError(f"{where}: data URL has MIME type {mime!r}, not an image type")
    try:
        return mime, base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageError(f"{where}: invalid base64 in data URL") from exc


def encode_data_url(image: Image.Image, mime: str | None = None, quality: int = 95) -> str:
    """Re-encode: JPEG stays JPEG (at ``quality``), everything else becomes PNG (lossless, written by
    :func:`~resgate_router.png.encode_png`)."""
    if mime in ("image/jpeg", "image/jpg"):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        mime, data = "image/jpeg", buffer.getvalue()
    else:
        mime, data = "image/png", encode_png(image)
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def rewrite_images(
    request: dict[str, Any],
    refs: list[ImageRef],
    sizes: list[tuple[int, int] | None],
    details: list[str | None],
    *,
    quality: int = 95,
    encode: bool = True,
) -> dict[str, Any]:
    """A copy of ``request`` with each image resized to its size (None: unchanged) and detail set.
    ``encode=False`` (an in-process downstream) puts PIL images in place of data URLs: resized ones,
    and the ones already decoded, so the downstream does not decode them again."""
    out = dict(request)
    out["messages"] = [copy.copy(m) for m in request["messages"]]
    for ref, size, detail in zip(refs, sizes, details):
        image: Image.Image | None = None
        if size is not None and ref.local:  # a local image has pixels
            image = resize_image(cast(Image.Image, ref.image), size, Image.Resampling.LANCZOS)
        if image is None and not encode and ref.decoded:
            image = ref.image
        if image is None and detail is None:
            continue
        message = out["messages"][ref.message]
        message["content"] = list(message["content"])
        part = dict(message["content"][ref.part])
        if part.get("type") == "image":
            if image is not None:
                part["image"] = image
        else:
            spec = (
                dict(part["image_url"]) if isinstance(part.get("image_url"), dict) else {"url": part.get("image_url")}
            )
            if image is not None:  # a fetched image too: the downstream gets what the router saw
                spec["url"] = image if ref.kind == "pil" or not encode else encode_data_url(image, ref.mime, quality)
            if detail is not None:
                spec["detail"] = detail
            part["image_url"] = spec
        message["content"][ref.part] = part
    return out


def to_wire(
    request: dict[str, Any], *, quality: int = 95, allow_local_paths: bool = True, pil_parts: bool = False
) -> dict[str, Any]:
    """A JSON-ready copy: PIL images and local paths become data URLs, ``image`` parts ``image_url``.
    ``pil_parts``: PIL images become vLLM's ``image_pil`` parts instead (an engine in this process
    takes the pixels as they are, with no encoding and no second decode)."""
    out = dict(request)
    messages = []
    for m_index, message in enumerate(request.get("messages") or []):
        parts = _parts(message, m_index)
        if not parts:
            messages.append(message)
            continue
        content = []
        for p_index, part in enumerate(parts):
            source = _image_source(part) if isinstance(part, dict) else None
            if source is None or (isinstance(source[0], str) and source[0].startswith(("data:", *_REMOTE))):
                content.append(part)
                continue
            value, detail = source
            where = f"messages[{m_index}].content[{p_index}]"
            if pil_parts and isinstance(value, Image.Image):
                content.append({"type": "image_pil", "image_pil": value})
                continue
            if isinstance(value, Image.Image):
                url = encode_data_url(value.convert("RGB") if value.mode not in ("RGB", "L") else value)
            elif isinstance(value, str) and allow_local_paths and not urlsplit(value).scheme[1:]:
                path = Path(value)
                mime = "image/jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else None
                url = encode_data_url(load_image(path), mime, quality)
            else:
                raise ImageError(f"{where}: cannot send this image over HTTP")
            spec = {"url": url, **({"detail": detail} if detail else {})}
            content.append({"type": "image_url", "image_url": spec})
        messages.append({**message, "content": content})
    out["messages"] = messages
    return out
