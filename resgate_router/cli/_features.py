"""Flags shared by the commands that run a gate's backbone over a labeled data set (train, evaluate)."""

from __future__ import annotations

import argparse


def add_backbone_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", default=None, help="feature cache (default ~/.cache/resgate/features)")
    parser.add_argument("--no-cache", action="store_true", help="compute features without reading or writing a cache")
    parser.add_argument("--strict", action="store_true", help="a missing or unreadable image is an error")
    parser.add_argument("--device", default=None, help="backbone device: cpu, cuda ... (default: cuda if available)")
    parser.add_argument("--dtype", default=None, help="backbone dtype (default: float32 on CPU, bfloat16 on CUDA)")
