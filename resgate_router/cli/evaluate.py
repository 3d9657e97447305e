"""``resgate evaluate``: accuracy, macro precision/recall, ROC-AUC and confusion matrix of a gate."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ._features import add_backbone_args

HELP = "Measure a trained gate on labeled data (accuracy, macro precision/recall, ROC-AUC, confusion matrix)."


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gate", required=True, help="gate directory or Hub id")
    parser.add_argument(
        "--data", required=True, help="labeled samples: .jsonl, CARES .parquet, datasets dir or hf:NAME"
    )
    parser.add_argument("--out", default=None, help="write the metrics as JSON to this file")
    parser.add_argument("--batch-size", type=int, default=8, help="samples per backbone forward pass")
    add_backbone_args(parser)


def main(args: argparse.Namespace) -> int:
    # Lazy import: torch, transformers and sklearn load only when this command runs.
    from ..tools.training.pipeline import evaluate_gate
    from ..tools.training.report import format_metrics

    metrics = evaluate_gate(
        args.gate,
        args.data,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        strict=args.strict,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
    )
    data = metrics["data"]
    if data.get("missing_images") or data.get("unreadable_images"):
        print(
            f"warning: skipped {data['missing_images']} missing and {data['unreadable_images']} unreadable images",
            file=sys.stderr,
        )
    print(format_metrics(metrics, metrics["class_names"]))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(metrics, indent=2))
        print(f"\nwrote {args.out}")
    return 0
