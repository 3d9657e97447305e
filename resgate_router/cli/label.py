"""``resgate label``: run the downstream at every resolution and label each sample (CARES rule)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._downstream import add_downstream_args, load_data, make_sweep

HELP = "Label samples with the smallest resolution at which the downstream still answers (CARES rule)."


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    add_downstream_args(parser)
    parser.add_argument("--ladder", default="card", help="card (384,512,full), cares (384,768,1024) or rungs r1,r2,...")
    parser.add_argument("--tau", type=float, default=0.85, help="a resolution answers when its score >= tau")
    parser.add_argument(
        "--delta", type=float, default=0.1, help="... and no higher resolution scores more than delta above it"
    )
    parser.add_argument("--out", required=True, help="labels file (JSONL; the data's rows plus label and runs)")
    parser.add_argument(
        "--runs", default=None, help="where finished runs are kept for resuming (default: OUT.runs.jsonl)"
    )


def main(args: argparse.Namespace) -> int:
    from ..ladder import Ladder
    from ..tools.labeling import label_samples

    ladder = Ladder.parse(args.ladder)  # bad flags fail before any work
    out = Path(args.out)
    samples = load_data(args).samples
    sweep = make_sweep(args, Path(args.runs) if args.runs else out.with_name(out.name + ".runs.jsonl"))
    try:
        summary = label_samples(samples, sweep, ladder, out, metric=args.metric, tau=args.tau, delta=args.delta)
    finally:
        for adapter in sweep.adapters:
            adapter.close()
    print(
        json.dumps({k: v for k, v in summary.items() if k != "incomplete"} | {"incomplete": len(summary["incomplete"])})
    )
    if summary["incomplete"]:
        print(f"{len(summary['incomplete'])} samples have failed runs and were not labeled: rerun to retry them")
        return 1
    return 0
