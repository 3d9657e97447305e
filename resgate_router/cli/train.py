"""``resgate train``: train a gate on labeled data: the MLP head over a frozen backbone (features
cached), with ``--gate granite-lora`` a LoRA adapter on Granite-Docling fine-tuned end to end, or with
``--gate docs`` the offline question-aware gate (no backbone: page analysis + question words + head)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ._engine import add_engine_args, ray_options
from ._features import add_backbone_args

if TYPE_CHECKING:
    from ..tools.training.trainer import TrainConfig

HELP = "Train a gate on labeled data: an MLP head on backbone features, a Granite LoRA adapter or a docs gate."


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", required=True, help="labeled samples: .jsonl, CARES .parquet, datasets dir or hf:NAME"
    )
    parser.add_argument(
        "--gate", default="mlp", choices=["mlp", "granite-lora", "docs"], help="gate kind to train (default mlp)"
    )
    parser.add_argument(
        "--backbone",
        default=None,
        help="SmolVLM (mlp) or Granite-Docling (granite-lora) model directory or Hub id (docs: none)",
    )
    parser.add_argument("--out", required=True, help="output gate directory (also gets metrics.json and a PNG)")
    parser.add_argument("--profile", default="single-tile", choices=["single-tile", "cares"], help="gate input profile")
    parser.add_argument("--layer", default="middle", help="feature hidden state: 'middle' or an index (0 = embeddings)")
    parser.add_argument("--window", type=int, default=0, help="average hidden states layer-w .. layer+w")
    parser.add_argument(
        "--ladder", default=None, help="card (default), cares or rungs like 384,512,full; docs: the labels' ladder"
    )
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 6; granite-lora 3)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (default 64; granite-lora 8)")
    parser.add_argument("--lr", type=float, default=None, help="AdamW learning rate (default 1e-4; granite-lora 2e-4)")
    parser.add_argument("--label-smoothing", type=float, default=0.0, help="cross-entropy label smoothing")
    parser.add_argument(
        "--class-weights", default="balanced", choices=["balanced", "none"], help="cross-entropy class weights"
    )
    parser.add_argument("--seed", type=int, default=42, help="split, initialisation and shuffling seed")
    parser.add_argument(
        "--val-frac", type=float, default=None, help="validation share (default 0.1; docs: 0.2 of the pages)"
    )
    parser.add_argument("--extract-batch-size", type=int, default=8, help="samples per backbone forward pass")
    add_engine_args(parser, "the mlp gate's feature extraction")
    add_backbone_args(parser)
    docs = parser.add_argument_group("docs gate")
    docs.add_argument(
        "--max-drop",
        type=float,
        default=0.005,
        help="accuracy the gate may give up against the top rung, out of fold on the training split (0.005)",
    )
    docs.add_argument("--policy", default="idefics3", help="family whose visual tokens the threshold minimises")
    docs.add_argument("--tau", type=float, default=0.85, help="a resolution answers when its score >= tau")
    lora = parser.add_argument_group("granite-lora gate")
    lora.add_argument("--rank", type=int, default=4, help="LoRA rank (default 4, as the model card)")
    lora.add_argument("--alpha", type=int, default=16, help="LoRA alpha (default 16)")
    lora.add_argument("--dropout", type=float, default=0.05, help="LoRA dropout (default 0.05)")
    lora.add_argument(
        "--target-modules",
        default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
        help="comma-separated module names that get LoRA (default q/k/v/o/gate/up/down projections)",
    )
    lora.add_argument("--probe-size", type=int, default=256, help="longest side of the gate's image probe (256)")
    lora.add_argument("--class-tokens", default=None, help="one single-token answer per class (default 0,1,2,...)")


def _train_config(args: argparse.Namespace) -> TrainConfig:
    from ..tools.training.trainer import TrainConfig

    defaults = {k: getattr(TrainConfig, k) for k in ("epochs", "batch_size", "lr")}  # the dataclass defaults
    if args.gate == "granite-lora":
        from ..tools.training.lora import LORA_TRAIN_DEFAULTS as defaults
    chosen = {k: defaults[k] if getattr(args, k) is None else getattr(args, k) for k in defaults}
    return TrainConfig(
        **chosen,
        label_smoothing=args.label_smoothing,
        class_weights=args.class_weights,
        seed=args.seed,
        val_frac=args.val_frac,
    )


def _train_lora(args: argparse.Namespace, config: TrainConfig) -> dict:
    from .._extras import require

    require("lora", "peft")
    from ..tools.training.lora import LoraSettings, train_granite_gate

    lora = LoraSettings(
        rank=args.rank,
        alpha=args.alpha,
        dropout=args.dropout,
        target_modules=tuple(m.strip() for m in args.target_modules.split(",") if m.strip()),
    )
    return train_granite_gate(
        args.data,
        args.backbone,
        args.out,
        ladder=args.ladder,
        lora=lora,
        config=config,
        probe_size=args.probe_size,
        class_tokens=args.class_tokens.split(",") if args.class_tokens else None,
        strict=args.strict,
        device=args.device,
        dtype=args.dtype,
    )


def _train_mlp(args: argparse.Namespace, config: TrainConfig) -> dict:
    from ..tools.training.pipeline import train_gate

    return train_gate(
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
        ray=ray_options(args),
    )


def _train_docs(args: argparse.Namespace) -> int:
    from ..tools.training.docs import train_docs_gate

    metrics = train_docs_gate(
        args.data,
        args.out,
        ladder=args.ladder,
        policy=args.policy,
        tau=args.tau,
        max_drop=args.max_drop,
        val_frac=0.2 if args.val_frac is None else args.val_frac,
        seed=args.seed,
        strict=args.strict,
    )
    val, oof = metrics["validation"], metrics["train_out_of_fold"]
    print(
        f"samples {metrics['data']['used']} ({metrics['unanswerable']} no rung answers); C {metrics['C']}, "
        f"threshold {metrics['threshold']} (out of fold: {oof['accuracy']:.1%} at {oof['visual_tokens']} tokens, "
        f"top rung {oof['top_rung_accuracy']:.1%} at {oof['top_rung_tokens']})"
    )
    if val:
        print(
            f"validation ({val['items']} samples on {metrics['split']['pages_val']} unseen pages): "
            f"{val['accuracy']:.1%} at {val['visual_tokens']} tokens; top rung {val['top_rung_accuracy']:.1%} at "
            f"{val['top_rung_tokens']}; oracle {val['oracle_accuracy']:.1%} at {val['oracle_tokens']}"
        )
    print(f"wrote {args.out} (metrics.json)")
    return 0


def main(args: argparse.Namespace) -> int:
    if args.gate != "mlp" and args.engine != "local":
        raise ConfigError(f"--engine {args.engine} runs the mlp gate's feature extraction; --gate {args.gate} has none")
    if args.gate == "docs":
        return _train_docs(args)
    if args.backbone is None:
        raise ConfigError(f"--gate {args.gate} needs --backbone (a model directory or Hub id)")
    args.ladder = args.ladder or "card"
    args.val_frac = 0.1 if args.val_frac is None else args.val_frac
    # Lazy import: torch, transformers and sklearn load only when this command runs.
    from ..tools.training.pipeline import CONFUSION_FILE, METRICS_FILE
    from ..tools.training.report import format_metrics

    config = _train_config(args)
    metrics = _train_lora(args, config) if args.gate == "granite-lora" else _train_mlp(args, config)
    data, split = metrics["data"], metrics["split"]
    if data["missing_images"] or data["unreadable_images"]:
        print(
            f"warning: skipped {data['missing_images']} missing and {data['unreadable_images']} unreadable images, "
            f"e.g. {(data['missing_examples'] + data['unreadable_examples'])[:3]}",
            file=sys.stderr,
        )
    if split["note"]:
        print(f"warning: random (not stratified) split: {split['note']}", file=sys.stderr)
    cache = metrics.get("cache")
    source = f"features: {cache['hits']} cached, {cache['misses']} extracted" if cache else "LoRA, no feature cache"
    print(
        f"samples {data['used']} (train {split['train']}, val {split['val']}); {source}; best epoch "
        f"{metrics['best_epoch']} of {len(metrics['history'])} by validation {metrics['selection_metric']}"
    )
    print(format_metrics(metrics["validation"], metrics["class_names"]))
    print(f"\nwrote {args.out} ({METRICS_FILE}, {CONFUSION_FILE})")
    return 0
