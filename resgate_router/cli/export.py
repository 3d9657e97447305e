"""``resgate export``: a gate's fast path to ONNX (+ preprocessing files), optionally int8."""

from __future__ import annotations

import argparse
import json
import time

HELP = "Export a gate's fast path to ONNX (runs with onnxruntime, no torch); --int8 adds a quantized copy."


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gate", required=True, help="gate directory, reference CARES checkpoint dir or Hub id")
    parser.add_argument("--out", required=True, help="output directory (load it with OnnxGate or load_gate)")
    parser.add_argument("--int8", action="store_true", help="also write a dynamically quantized int8 model")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: 18)")
    parser.add_argument("--backbone", default=None, help="base model dir or Hub id (reference checkpoints)")
    parser.add_argument(
        "--profile", default=None, choices=["cares", "single-tile"], help="override the gate's input profile"
    )
    parser.add_argument(
        "--check-samples", type=int, default=16, help="varied inputs on which ONNX is compared with PyTorch"
    )
    parser.add_argument("--json", action="store_true", help="print the checks as one JSON object")


def main(args: argparse.Namespace) -> int:
    # Lazy import: torch, transformers and the ONNX exporter load only when exporting.
    from .._extras import require

    require("hf", "torch", "transformers")
    require("export", "onnx", "onnxscript")
    require("onnx", "onnxruntime", "tokenizers")
    from ..gate.export import DEFAULT_OPSET, export_gate

    started = time.perf_counter()
    settings = export_gate(
        args.gate,
        args.out,
        int8=args.int8,
        opset=args.opset or DEFAULT_OPSET,
        check_samples=args.check_samples,
        backbone=args.backbone,
        profile=args.profile,
    )
    checks = settings["checks"]
    if args.json:
        print(json.dumps({"out": args.out, "seconds": round(time.perf_counter() - started, 1), **checks}))
        return 0
    print(f"exported to {args.out} in {time.perf_counter() - started:.0f} s (profile {settings['gate']['profile']})")
    for name, check in checks.items():
        print(
            f"{name:<14} same class on {check['agreement']:.1%} of {check['samples']} varied inputs, "
            f"largest probability difference {check['max_abs_prob_diff']:.2g}"
        )
    return 0
