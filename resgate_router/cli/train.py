"""``resgate train``: train a gate head on labeled data over a frozen backbone (features cached)."""

from __future__ import annotations

import argparse
import sys

HELP = "Train a gate head on labeled data (frozen backbone features are computed once and cached)."


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", required=True, help="labeled samples: .jsonl, CARES .parquet, datasets dir or hf:NAME"
    )
    parser.add_argument("--backbone", required=True, help="SmolVLM (Idefics3) model directory or Hub id")
    parser.add_argument("--out", required=True, help="output gate directory (also gets metrics.json and a PNG)")
    parser.add_argument("--profile", default="single-tile", choices=["single-tile", "cares"], help="gate input profile")
    parser.add_argument("--layer", default="middle", help="feature hidden state: 'middle' or an index (0 = embeddings)")
    parser.add_argument("--window", type=int, default=0, help="average hidden states layer-w .. layer+w")
    parser.add_argument("--ladder", default="card", help="card, cares or rungs like 384,512,full; one class per rung")
    parser.add_argument("--epochs", type=int, default=6, help="head training epochs (default 6)")
    parser.add_argument("--batch-size", type=int, default=64, help="head training batch size (default 64)")
    parser.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate (default 1e-4)")
    parser.add_argument("--label-smoothing", type=float, default=0.0, help="cross-entropy label smoothing")
    parser.add_argument(
        "--class-weights", default="balanced", choices=["balanced", "none"], help="cross-entropy class weights"
    )
    parser.add_argument("--seed", type=int, default=42, help="split, initialisation and shuffling seed")
    parser.add_argument("--val-frac", type=float, default=0.1, help="stratified validation share")
    parser.add_argument("--cache-dir", default=None, help="feature cache (default ~/.cache/resgate/features)")
    parser.add_argument("--no-cache", action="store_true", help="compute features without reading or writing a cache")
    parser.add_argument("--extract-batch-size", type=int, default=8, help="samples per backbone forward pass")
    parser.add_argument("--strict", action="store_true", help="a missing or unreadable image is an error")
    parser.add_argument("--device", default=None, help="backbone device: cpu, cuda ... (default: cuda if available)")
    parser.add_argument("--dtype", default=None, help="backbone dtype (default: float32 on CPU, bfloat16 on CUDA)")


def main(args: argparse.Namespace) -> int:
    # Lazy import: torch, transformers and sklearn load only when this command runs.
    from ..training.pipeline import CONFUSION_FILE, METRICS_FILE, train_gate
    from ..training.report import format_metrics
    from ..training.trainer import TrainConfig

    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        label_smoothing=args.label_smoothing,
        class_weights=args.class_weights,
        seed=args.seed,
        val_frac=args.val_frac,
    )
    metrics = train_gate(
        args.data,
        args.backbone,
        args.out,
        profile=args.profile,
        layer=args.layer,
        window=args.window,
        ladder=args.ladder,
        config=config,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        strict=args.strict,
        device=args.device,
        dtype=args.dtype,
        extract_batch_size=args.extract_batch_size,
    )
    data, cache, split = metrics["data"], metrics["cache"], metrics["split"]
    if data["missing_images"] or data["unreadable_images"]:
        print(
            f"warning: skipped {data['missing_images']} missing and {data['unreadable_images']} unreadable images, "
            f"e.g. {(data['missing_examples'] + data['unreadable_examples'])[:3]}",
            file=sys.stderr,
        )
    if split["note"]:
        print(f"warning: random (not stratified) split: {split['note']}", file=sys.stderr)
    print(
        f"samples {data['used']} (train {split['train']}, val {split['val']}); features: {cache['hits']} cached, "
        f"{cache['misses']} extracted; best epoch {metrics['best_epoch']} of {len(metrics['history'])} "
        f"by validation {metrics['selection_metric']}"
    )
    print(format_metrics(metrics["validation"], metrics["class_names"]))
    print(f"\nwrote {args.out} ({METRICS_FILE}, {CONFUSION_FILE})")
    return 0
