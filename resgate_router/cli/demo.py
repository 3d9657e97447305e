"""``resgate demo``: the offline end-to-end run of the gate, with nothing downloaded.

Builds a tiny random-weight SmolVLM backbone and gate (``resgate_router.testing``), renders
synthetic document pages and routes each with both input profiles. The decisions of a random head
carry no meaning; the run shows the whole path (image decoding, profile preprocessing, truncated
backbone, pooling, head, ladder) working and what it costs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

HELP = "Offline demo: build a tiny gate locally and route synthetic documents with it."

_QUESTIONS = ["What is the invoice number in the heading?", "What is the total amount due?", "Who signed the form?"]


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir", default=".cache/resgate-demo", help="where the tiny gate is built (reused when present)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per decision")


def main(args: argparse.Namespace) -> int:
    from ..gate import SmolVLMGate
    from ..testing import build_tiny_gate, make_document_image

    root = Path(args.dir)
    if not (root / "gate" / "config.json").is_file():
        print(f"building a tiny random-weight SmolVLM backbone and gate in {root} ...")
        backbone = build_tiny_gate(root / "gate", backbone=None).joinpath("backbone")
        build_tiny_gate(root / "gate-cares", backbone=backbone, profile="cares")
    pages = [
        make_document_image(850, 1100, seed=0),
        make_document_image(1700, 2200, lines=60, seed=1),
        make_document_image(600, 300, lines=6, seed=2),
    ]
    for profile_dir in ("gate", "gate-cares"):
        gate = SmolVLMGate.from_pretrained(root / profile_dir)
        print(f"\n{gate}")
        for page, question in zip(pages, _QUESTIONS):
            started = time.perf_counter()
            decision = gate.predict(page, question)
            ms = (time.perf_counter() - started) * 1000
            if args.json:
                print(
                    json.dumps(
                        {
                            "profile": gate.profile,
                            "image": list(page.size),
                            "question": question,
                            "gate_ms": round(ms, 1),
                            **decision.to_dict(),
                        }
                    )
                )
            else:
                print(
                    f"  {page.width}x{page.height} {question!r}: class {decision.label} -> {decision.resolution}, "
                    f"p={[round(p, 3) for p in decision.probabilities]}, "
                    f"expected {decision.expected_resolution:.0f} px, {ms:.0f} ms"
                )
    print("\n(random weights: decisions are not meaningful; train a head with your own labels or load a real gate)")
    return 0
