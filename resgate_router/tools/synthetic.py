"""Synthetic document pages with known answers, for the offline demo and tests.

Invoices, forms, receipts and tables rendered with Pillow's built-in scalable font. Each text block
draws its size from a tier (a fraction of the page's long side, so receipts and landscape tables
scale alike), and which tier a field gets varies per page: some answers stay legible at a 384 px
long side, others need 768 px or the native page. Every answer occurs once on the page, so the
``contains`` metric cannot be satisfied by some other text. ``text_px`` in the output is the font
size (em height in px at native resolution) the answer was drawn with.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import ConfigError
from .page_kit import _Page
from .page_templates import form, invoice, receipt, table

__all__ = ["KINDS", "generate_documents"]

KINDS = ("invoice", "form", "receipt", "table")


_BUILDERS: dict[str, Callable[[random.Random], _Page]] = {
    "invoice": invoice,
    "form": form,
    "receipt": receipt,
    "table": table,
}


def generate_documents(out_dir: str | Path, n: int = 24, *, seed: int = 0, kinds: Sequence[str] = KINDS) -> Path:
    """Render n pages (cycling over kinds) with questions; write images under out_dir/images/ and
    out_dir/qa.jsonl; return the path of qa.jsonl. Deterministic for a seed."""
    if isinstance(kinds, str):
        kinds = (kinds,)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be a positive integer, got {n!r}")
    if not kinds or any(kind not in _BUILDERS for kind in kinds):
        raise ConfigError(f"unknown document kinds {list(kinds)!r}; available: {', '.join(KINDS)}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for index in range(n):
        kind = kinds[index % len(kinds)]
        rng = random.Random(f"resgate-synthetic/{seed}/{index}")  # pages do not depend on n or on each other
        page = _BUILDERS[kind](rng)
        name = f"images/{kind}-{index:03d}.png"
        questions = page.questions()
        page.finish().save(out / name, compress_level=1)
        for number, (question, answer, text_px) in enumerate(questions):
            item = {
                "id": f"{kind}-{index:03d}-q{number}",
                "image": name,
                "question": question,
                "answers": [answer],
                "kind": kind,
                "text_px": text_px,
                "width": page.width,
                "height": page.height,
            }
            lines.append(json.dumps(item))
    path = out / "qa.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
