"""``resgate demo``: the offline end-to-end run, with nothing downloaded.

Builds a tiny random-weight SmolVLM backbone and gates (``resgate_router.testing``), renders
synthetic document pages, and sends OpenAI-style chat requests through the router to the tiny model
running in this process (``HFAdapter``): gate -> resize / processor settings -> downstream -> savings
log. The decisions of a random head carry no meaning; the run shows the whole path working, what it
costs, and that the downstream's own prompt-token counts match the router's accounting.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

HELP = "Offline demo: build a tiny gate and model locally and route synthetic documents end to end."

_QUESTIONS = ["What is the invoice number in the heading?", "What is the total amount due?", "Who signed the form?"]


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir", default=".cache/resgate-demo", help="where the tiny gate is built (reused when present)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON routing record per request")


def main(args: argparse.Namespace) -> int:
    from ..adapters.hf_transformers import HFAdapter
    from ..gate import SmolVLMGate
    from ..messages import encode_data_url
    from ..router import Router
    from ..testing import build_tiny_gate, make_document_image

    root = Path(args.dir)
    backbone = root / "gate" / "backbone"
    if not (root / "gate" / "config.json").is_file():
        print(f"building a tiny random-weight SmolVLM backbone and gates in {root} ...")
        build_tiny_gate(root / "gate")
        build_tiny_gate(root / "gate-cares", backbone=backbone, profile="cares")
    pages = [
        make_document_image(850, 1100, seed=0),
        make_document_image(1700, 2200, lines=60, seed=1),
        make_document_image(600, 300, lines=6, seed=2),
    ]
    downstream = HFAdapter(backbone, device="cpu", max_new_tokens=8)
    for name in ("gate", "gate-cares"):
        gate = SmolVLMGate.from_pretrained(root / name, device="cpu")
        router = Router(gate, downstream, family="idefics3", model=backbone, log=root / "savings.jsonl", metrics=False)
        print(f"\n{gate}")
        for page, question in zip(pages, _QUESTIONS):
            content = [
                {"type": "image_url", "image_url": {"url": encode_data_url(page)}},
                {"type": "text", "text": question},
            ]
            request = {"model": "tiny-smolvlm", "messages": [{"role": "user", "content": content}], "max_tokens": 8}
            started = time.perf_counter()
            result = router.complete(request)
            record, usage = result.record, result.response.usage
            if args.json:
                print(json.dumps(record))
                continue
            image = record["images"][0]
            print(
                f"  {page.width}x{page.height} {question!r}\n"
                f"    class {image['class']} ({image['class_name']}, p={image['confidence']:.2f}) "
                f"-> {image['target']}: "
                f"visual tokens {record['routed_tokens']} vs {record['baseline_tokens']} baseline "
                f"({record['saved_tokens']} saved); downstream prompt {usage.prompt_tokens} tokens; "
                f"gate {record['gate_ms']:.0f} ms, downstream {record['downstream_ms']:.0f} ms, "
                f"total {(time.perf_counter() - started) * 1000:.0f} ms"
            )
        router.close()
        print(f"  summary: {router.stats}")
    print(f"\nsavings log: {root / 'savings.jsonl'}")
    print("(random weights: decisions and answers are not meaningful;")
    print(" train a head with your own labels, or load a real gate)")
    return 0
