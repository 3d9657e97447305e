"""Flags and set-up shared by the commands that run a downstream over a data set (label, bench)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._engine import add_engine_args

if TYPE_CHECKING:  # the tools extra loads when a command that needs it runs
    from ..tools.datasets import LoadedSamples


def add_downstream_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        required=True,
        help="samples: .jsonl (id, image, question, answers), CARES .parquet, "
        "a datasets save_to_disk directory or hf:NAME[:SPLIT]",
    )
    parser.add_argument(
        "--adapter",
        required=True,
        help="downstream: ocr | hf:MODEL_DIR | vllm:MODEL_DIR | openai:URL[,URL...] (several URLs: round-robin)",
    )
    parser.add_argument("--metric", default="anls", choices=["anls", "relaxed", "vqa", "exact", "contains"])
    parser.add_argument("--concurrency", type=int, default=1, help="requests in flight (HTTP adapters)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=16,
        help="requests per engine call for in-process engines (hf, vllm; default 16); 1 also records "
        "per-request latency",
    )
    parser.add_argument("--family", default=None, help="downstream family for resizing and token accounting")
    parser.add_argument("--model", default=None, help="downstream model dir or Hub id (processor config, family)")
    parser.add_argument("--served-model", default=None, help="the 'model' field sent to an OpenAI-compatible server")
    parser.add_argument(
        "--cache-key",
        default=None,
        help="name the downstream's answers are cached under (default: the --adapter spec without its URLs)",
    )
    parser.add_argument("--max-tokens", type=int, default=64, help="answer length limit")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N samples")
    parser.add_argument("--strict", action="store_true", help="a missing image file is an error")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_engine_args(parser, "the downstream runs")


def load_data(args: argparse.Namespace, **kwargs: Any) -> LoadedSamples:
    from ..tools.datasets import load_samples

    loaded = load_samples(args.data, strict=args.strict, **kwargs)
    if loaded.missing:
        print(f"warning: {len(loaded.missing)} samples skipped, image missing (first: {loaded.missing[0]})")
    if args.limit is not None:
        loaded.samples = loaded.samples[: args.limit]
    return loaded


def cache_key(args: argparse.Namespace) -> str:
    if args.cache_key:
        return args.cache_key
    name, _, arg = args.adapter.partition(":")
    if name.startswith("openai"):
        return f"{name}:{args.served_model or 'default'}"
    return f"{name}:{Path(arg).name}" if arg else name


def make_sweep(args: argparse.Namespace, store_path: Path, *, stream: bool = False) -> Any:
    """The sweep of ``--engine``: here (:class:`Sweep`) or on a Ray actor pool (:class:`RaySweep`)."""
    from ..adapters.base import build_adapters
    from ..policies import get_policy
    from ..tools.sweep import RunStore, Sweep
    from ._engine import ray_options

    policy = get_policy(args.family or ("idefics3" if args.model is None else None), args.model)
    options = {
        "model": cache_key(args),
        "policy": policy,
        "concurrency": args.concurrency,
        "max_tokens": args.max_tokens,
        "served_model": args.served_model,
        "stream": stream,
        "batch_size": args.batch_size,
        "progress": not args.no_progress,
    }
    ray = ray_options(args)
    if ray is not None:
        from ..tools.ray_engine import RaySweep

        return RaySweep(args.adapter, RunStore(store_path), ray=ray, **options)
    return Sweep(build_adapters(args.adapter), RunStore(store_path), **options)
