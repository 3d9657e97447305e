"""``resgate bench``: score vs compute of fixed resolutions, gates and the oracle on one data set."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._downstream import add_downstream_args, load_data, make_sweep

HELP = "Benchmark gates against fixed resolutions: score, visual tokens, FLOPs, latency (table + plot)."

_OCR_NOTE = "an OCR reader (rapidocr-onnxruntime), not a VLM: its score measures legibility at each resolution"


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    add_downstream_args(parser)
    parser.add_argument(
        "--gates",
        default="fixed:384,fixed:512,fixed:768,native,oracle",
        help="comma-separated: fixed:N, native, oracle, legibility, or a gate directory",
    )
    parser.add_argument(
        "--ladder", default="card", help="rungs per-request gates choose from: card, cares, or r1,r2,..."
    )
    parser.add_argument(
        "--out", default="bench-results", help="output directory (results.json, results.md, pareto.png)"
    )
    parser.add_argument(
        "--extra-metric", default="", help="comma-separated second views of the same answers (e.g. anls-lines)"
    )
    parser.add_argument(
        "--extra-family", default="", help="comma-separated families for second token tables (e.g. qwen2_vl)"
    )
    parser.add_argument("--stream", action="store_true", help="stream answers to measure TTFT (adapters that stream)")
    parser.add_argument(
        "--tolerance", type=float, default=0.01, help="score drop vs native still counted as no loss (0.01 = 1 point)"
    )


def main(args: argparse.Namespace) -> int:
    from ..flops import model_cost
    from ..ladder import Ladder
    from ..policies import get_policy
    from ..tools.bench.report import write_report
    from ..tools.bench.run import run_bench
    from ..tools.scoring import SCORERS

    ladder = Ladder.parse(args.ladder)  # bad flags fail before any work
    specs = [g.strip() for g in args.gates.split(",") if g.strip()]
    extra_metrics = [m.strip() for m in args.extra_metric.split(",") if m.strip()]
    for name in extra_metrics:
        if name not in SCORERS:
            raise SystemExit(f"resgate bench: error: unknown metric {name!r}: available are {sorted(SCORERS)}")
    extra = {f.strip(): get_policy(f.strip()) for f in args.extra_family.split(",") if f.strip()}
    samples = load_data(args).samples
    out = Path(args.out)
    sweep = make_sweep(args, out / "answers.jsonl", stream=args.stream)
    try:
        result = run_bench(
            samples,
            sweep,
            specs,
            ladder,
            metric=args.metric,
            extra_metrics=extra_metrics,
            cost=model_cost(args.model, sweep.policy.name),
            extra_policies=extra,
            tolerance=args.tolerance,
            progress=not args.no_progress,
        )
    finally:
        for adapter in sweep.adapters:
            adapter.close()
    downstream = args.adapter.split(":")[0] if args.adapter.startswith("openai") else args.adapter
    meta = {
        "command": args.command_line,
        "data": args.data,
        "downstream": f"{downstream} ({_OCR_NOTE})" if args.adapter.split(":")[0] == "ocr" else downstream,
        "cache_key": sweep.model,
        "metric": args.metric,
        "ladder": ladder.spec(),
        "family": _family_label(sweep.policy.name, args.model),
        "tolerance": args.tolerance,
    }
    paths = write_report(result, out, meta)
    print(paths["md"].read_text(encoding="utf-8"))
    print(f"results: {paths['json']}\ntable:   {paths['md']}\nplot:    {paths['png']}")
    return 0


def _family_label(family: str, model: str | None) -> str:
    if model:
        return f"{family} ({model})"
    return f"{family} (SmolVLM-256M-Instruct preset)" if family == "idefics3" else f"{family} (class defaults)"
