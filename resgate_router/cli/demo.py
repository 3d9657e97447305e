"""``resgate demo``: the offline end-to-end run, with nothing downloaded.

Generates synthetic documents (invoices, forms, receipts, tables with mixed text sizes and known
answers), then benchmarks the shipped learned gate ``builtin:docs`` and the zero-parameter
``legibility`` gate against a fixed-resolution baseline, the downstream's native processing and the
oracle, with the offline OCR reader as the downstream
(an OCR reader, not a VLM: it measures whether the answer is legible at the resolution sent). Prints
the table and the path of the score-vs-cost plot. The answers are cached under ``--dir``: a second
run only re-runs the gates.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Offline demo: synthetic documents, builtin:docs and legibility gates vs a fixed resolution, OCR reader."


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default=".cache/resgate-demo", help="where documents and results go")
    parser.add_argument("--docs", type=int, default=12, help="synthetic pages to generate")
    parser.add_argument("--baseline", default="fixed:768", help="the fixed-resolution baseline (fixed:N)")
    parser.add_argument(
        "--ladder", default="384,512,768,1024,full", help="rungs the gates choose from (builtin:docs: its own only)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")


def main(args: argparse.Namespace) -> int:
    from .. import cli
    from ..gate.loading import load_gate
    from ..ladder import Ladder
    from ..tools.synthetic import generate_documents

    root = Path(args.dir)
    data = generate_documents(root / "documents", n=args.docs, seed=args.seed)
    print(f"generated {args.docs} synthetic pages with questions: {data}")
    bench = ["bench", "--data", str(data), "--adapter", "ocr", "--metric", "contains", "--extra-metric", "anls-lines"]
    gates = [args.baseline, "builtin:docs", "legibility", "native", "oracle"]
    if Ladder.parse(args.ladder).rungs != load_gate("builtin:docs").ladder.rungs:  # it chooses on its own ladder only
        print(f"builtin:docs left out: it chooses from {load_gate('builtin:docs').ladder.spec()}, not {args.ladder}")
        gates.remove("builtin:docs")
    bench += ["--ladder", args.ladder, "--gates", ",".join(gates)]
    bench += ["--out", str(root / "results")] + (["--no-progress"] if args.no_progress else [])
    return cli.main(bench)
