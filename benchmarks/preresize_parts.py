"""What the router's pre-resize of a 1700x2200 PNG page costs, step by step, in this process (medians
of 15, ms): the PNG decode, the exact LANCZOS shrink to 512 px (banded on threads and in one
thread), Pillow's cheaper ``reducing_gap=1.0`` (box reduction, then LANCZOS: other pixels) and the PNG
encode of the result (the router's writer and Pillow's). The page is a PNG as Pillow writes it by
default.

    python -m benchmarks.preresize_parts
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable

from PIL import Image

from ._common import png_bytes


def _median_ms(fn: Callable[[], object], n: int = 15) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def main() -> dict[str, float]:
    from resgate_router.gate.resample import resize_image
    from resgate_router.png import encode_png
    from resgate_router.testing import make_document_image

    png = png_bytes(make_document_image(1700, 2200, lines=20, seed=1))
    page = Image.open(io.BytesIO(png)).convert("RGB")
    size, lanczos = (396, 512), Image.Resampling.LANCZOS
    small = page.resize(size, lanczos)
    figures = {
        "png decode": _median_ms(lambda: Image.open(io.BytesIO(png)).load()),
        "lanczos, banded": _median_ms(lambda: resize_image(page, size, lanczos)),
        "lanczos, one thread": _median_ms(lambda: page.resize(size, lanczos)),
        "reducing_gap=1.0": _median_ms(lambda: page.resize(size, lanczos, reducing_gap=1.0)),
        "png encode 396x512 (the router's)": _median_ms(lambda: encode_png(small)),
        "png encode 396x512 (Pillow, level 1)": _median_ms(lambda: small.save(io.BytesIO(), "PNG", compress_level=1)),
    }
    print(figures)
    return figures


if __name__ == "__main__":
    main()
