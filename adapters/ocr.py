"""``OCRAdapter``: an offline legibility reader, NOT a VLM.

It runs RapidOCR (``rapidocr-onnxruntime``, ONNX models shipped in the wheel, CPU, no download;
RESEARCH.md 7) on the request's image at the resolution it is given and answers with the page text it
can read, whatever the question. Scored with the ``contains`` metric it measures whether the
information is still legible at a resolution, which is what a resolution gate predicts; it says
nothing about how a VLM would reason over the page.

The resolution comes either from the pixels (the Idefics3 policy pre-resizes them) or from
``processor_kwargs={"size": {"longest_edge": N}}`` (the image is then downscaled the way the policy
does it, never upscaled); both read the same pixels. Other processor kwargs are ignored (other
families pre-resize the pixels themselves). The text depends only on (pixels, longest_edge), so it is
memoized in a bounded thread-safe LRU: several questions on one page cost one OCR call.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections import OrderedDict
from concurrent.futures import Future
from pathlib import Path
from typing import Any, cast

from PIL import Image

from .._extras import require
from ..errors import ImageError, InputError
from ..images import ImageInput, load_image
from ..messages import ImageRef, find_images
from ..policies.idefics3 import resized_size
from .base import Adapter, AsyncAdapter
from .models import ChatResponse

__all__ = ["OCRAdapter", "longest_edge_of"]

DEFAULT_MODEL = "ocr-legibility-reader/rapidocr-onnxruntime (not a VLM)"


def longest_edge_of(processor_kwargs: dict[str, Any] | None) -> int | None:
    """``size.longest_edge`` of Idefics3-style processor kwargs (None when absent)."""
    size = (processor_kwargs or {}).get("size")
    edge = size.get("longest_edge") if isinstance(size, dict) else None
    if edge is None:
        return None
    if isinstance(edge, bool) or not isinstance(edge, int) or edge <= 0:
        raise InputError(f"size.longest_edge must be a positive integer, got {edge!r}")
    return edge


class OCRAdapter(Adapter, AsyncAdapter):
    """Reads the page text of each image of a request (lines top-to-bottom, left-to-right).

    Usage: ``prompt_tokens`` is 0 (the reader takes no prompt; visual tokens come from the family
    policy's accounting), ``completion_tokens`` is the number of text lines read.
    """

    name = "ocr"

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        cache_size: int = 1024,
        engine: Any = None,
        engine_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """``cache_size``: (image, resolution) readings kept (0: no memo); ``engine``: a ready
        ``RapidOCR`` instance to share, else one is built on first use with ``engine_kwargs``."""
        require("ocr", "rapidocr_onnxruntime")
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        self.model, self.cache_size = model, cache_size
        self.engine_kwargs = dict(engine_kwargs or {})
        self._engine: Any = engine
        self._engine_lock = threading.Lock()  # RapidOCR is not documented thread-safe; ORT uses all cores
        self._cache: OrderedDict[tuple[str, int | None], tuple[str, ...]] = OrderedDict()
        self._pending: dict[tuple[str, int | None], Future[tuple[str, ...]]] = {}
        self._cache_lock = threading.Lock()
        self._local = threading.local()  # per-thread count of real readings in the current call

    # ------------------------------------------------------------------ adapter protocol
    def complete(self, request: dict[str, Any], *, processor_kwargs: dict[str, Any]) -> ChatResponse:
        edge = longest_edge_of(processor_kwargs)
        refs = find_images(request)
        if not refs:
            raise InputError("the ocr reader needs a request with an image")
        self._local.readings = 0
        pages = [self._read_ref(ref, edge) for ref in refs]
        text = "\n\n".join("\n".join(lines) for lines in pages)
        response = ChatResponse.from_text(self.model, text, "stop", 0, sum(len(lines) for lines in pages))
        # every page came from the memo: no OCR time spent (an extra field: ChatResponse keeps extras)
        response.cached = self._local.readings == 0  # type: ignore[attr-defined]
        return response

    async def acomplete(self, request: dict[str, Any], *, processor_kwargs: dict[str, Any]) -> ChatResponse:
        """``complete`` in a worker thread (OCR is CPU-bound)."""
        return await asyncio.to_thread(self.complete, request, processor_kwargs=processor_kwargs)

    def close(self) -> None:
        """Drop the memo (the engine holds no connections)."""
        with self._cache_lock:
            self._cache.clear()

    # ------------------------------------------------------------------ reading
    def read(self, image: ImageInput, longest_edge: int | None = None) -> list[str]:
        """The text lines of ``image`` (PIL, path or bytes) read at ``longest_edge`` (None: as given)."""
        pixels = load_image(image)
        return self._memoized((_pixel_digest(pixels), longest_edge), lambda: pixels, longest_edge)

    def _read_ref(self, ref: ImageRef, edge: int | None) -> list[str]:
        if not ref.local:
            raise ImageError(f"messages[{ref.message}].content[{ref.part}]: the ocr reader does not fetch remote URLs")
        return self._memoized((_source_digest(ref), edge), lambda: ref.image, edge)

    def _memoized(self, key: tuple[str, int | None], pixels: Any, edge: int | None) -> list[str]:
        """``_ocr(pixels())`` once per key: cached (LRU), concurrent callers of a key share one reading."""
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return list(self._cache[key])
            future = self._pending.get(key)
            owner = future is None
            if future is None:
                future = self._pending[key] = Future()
        if not owner:  # another thread is reading this very page: wait for its result
            return list(future.result())
        self._local.readings = getattr(self._local, "readings", 0) + 1
        try:
            lines = tuple(self._ocr(_at_edge(pixels(), edge)))
        except BaseException as exc:
            with self._cache_lock:
                del self._pending[key]
            future.set_exception(exc)
            raise
        with self._cache_lock:
            del self._pending[key]
            if self.cache_size:
                self._cache[key] = lines
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        future.set_result(lines)
        return list(lines)

    def _ocr(self, image: Image.Image) -> list[str]:
        with self._engine_lock:
            if self._engine is None:
                from rapidocr_onnxruntime import RapidOCR

                self._engine = RapidOCR(**self.engine_kwargs)
            result, _ = self._engine(image.convert("RGB"))
        # RapidOCR returns [box, text, score] sorted top-to-bottom, then left-to-right within a line
        return [str(text) for _, text, _ in (result or []) if str(text).strip()]


def _at_edge(image: Image.Image, edge: int | None) -> Image.Image:
    """Downscale so the longest side is ``edge`` exactly as the Idefics3 policy pre-resizes (LANCZOS,
    same rounding), so a pre-resized image and a processor kwarg read identical pixels."""
    if edge is None or edge >= max(image.size):
        return image
    return image.resize(resized_size(image.width, image.height, edge), Image.Resampling.LANCZOS)


def _pixel_digest(image: Image.Image) -> str:
    digest = hashlib.blake2b(f"{image.mode}:{image.size}".encode(), digest_size=16)
    digest.update(image.tobytes())
    return digest.hexdigest()


def _source_digest(ref: ImageRef) -> str:
    """Encoded bytes are hashed as they came (no decode on a cache hit); PIL images by their pixels."""
    if isinstance(ref.source, (bytes, bytearray)):
        return "b:" + hashlib.blake2b(bytes(ref.source), digest_size=16).hexdigest()
    if isinstance(ref.source, Path):
        return "b:" + hashlib.blake2b(ref.source.read_bytes(), digest_size=16).hexdigest()
    return "p:" + _pixel_digest(cast(Image.Image, ref.image))  # a local image has pixels
