"""``resgate route``: print one gate decision for an image and a question."""

from __future__ import annotations

import argparse
import json
import time

HELP = "Run a gate on one image and question and print its decision."


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gate",
        required=True,
        help="gate directory (MLP or ONNX), reference CARES checkpoint dir, Hub id, or legibility",
    )
    parser.add_argument("--image", required=True, help="image file")
    parser.add_argument("--question", required=True, help="the question asked about the image")
    parser.add_argument("--ladder", default=None, help="card, cares or rungs like 384,512,full (default: the gate's)")
    parser.add_argument("--backbone", default=None, help="base model dir or Hub id (reference checkpoints)")
    parser.add_argument(
        "--profile", default=None, choices=["cares", "single-tile"], help="override the gate's input profile"
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--dtype", default=None, help="float32 or bfloat16 (default: float32 on CPU, bfloat16 on CUDA)")
    parser.add_argument(
        "--family", default=None, help="downstream family for token accounting (idefics3, qwen2_vl, ...)"
    )
    parser.add_argument("--model", default=None, help="downstream model dir or Hub id (processor config, family)")
    parser.add_argument("--json", action="store_true", help="print the decision as one JSON object")


def main(args: argparse.Namespace) -> int:
    # Lazy import: torch and transformers load only when a gate is actually run.
    from ..gate.loading import load_gate
    from ..images import load_image
    from ..ladder import Ladder

    ladder = Ladder.parse(args.ladder) if args.ladder else None  # fail fast on bad input, before loading the model
    image = load_image(args.image)
    started = time.perf_counter()
    options = {"backbone": args.backbone, "profile": args.profile, "device": args.device, "dtype": args.dtype}
    gate = load_gate(args.gate, ladder=ladder, **options)
    load_ms = (time.perf_counter() - started) * 1000
    accounting: dict = {}
    started = time.perf_counter()
    if args.family or args.model:
        from ..router import Router

        router = Router(gate, family=args.family, model=args.model, on_gate_error="raise", metrics=False)
        parts = [{"type": "image", "image": image}, {"type": "text", "text": args.question}]
        routed = router.route({"messages": [{"role": "user", "content": parts}]})
        decision, entry = routed.decisions[0], routed.record.images[0]
        accounting = {
            "family": router.family,
            "target": entry.rung,
            "sent": entry.sent,
            "processor_kwargs": routed.processor_kwargs,
            "baseline_tokens": entry.baseline_tokens,
            "routed_tokens": entry.routed_tokens,
            "saved_tokens": entry.saved_tokens,
        }
    else:
        decision = gate.predict(image, args.question)
    gate_ms = (time.perf_counter() - started) * 1000
    report = {
        **decision.to_dict(),
        "ladder": gate.ladder.spec(),
        "profile": getattr(gate, "profile", None),
        "native_long_side": max(image.size),
        "gate_ms": round(gate_ms, 2),
        "load_ms": round(load_ms, 1),
        **accounting,
    }
    if args.json:
        print(json.dumps(report))
        return 0
    probs = " | ".join(f"{n} {p:.3f}" for n, p in zip(gate.config.class_names, decision.probabilities))
    print(f"class                {decision.label} ({decision.class_name})")
    print(
        f"resolution           {decision.resolution}"
        + (" (no reduction)" if decision.resolution == "full" else " px longest side")
    )
    print(f"confidence           {decision.confidence:.3f}")
    print(f"probabilities        {probs}")
    print(f"expected resolution  {decision.expected_resolution:.0f} px (native {max(image.size)} px)")
    if accounting:
        saved = accounting["saved_tokens"] / accounting["baseline_tokens"] if accounting["baseline_tokens"] else 0.0
        print(
            f"visual tokens        {accounting['routed_tokens']} routed vs {accounting['baseline_tokens']} baseline "
            f"({accounting['saved_tokens']} saved, {saved:.0%}; family {accounting['family']})"
        )
    dtype = str(getattr(gate, "dtype", "float32")).replace("torch.", "")
    where = f"{type(gate).__name__}, profile {getattr(gate, 'profile', '-')}, {getattr(gate, 'device', 'cpu')}, {dtype}"
    where += f"; load {load_ms / 1000:.1f} s"
    print(f"gate latency         {gate_ms:.1f} ms ({where})")
    return 0
