"""Downstream cost per rung: visual tokens and prefill latency of the full-size SmolVLM-256M
architecture (random weights) on one 1700x2200 page, at each ``size.longest_edge`` the router can
set. This is what a gate decision buys on an Idefics3-family downstream.

    python -m benchmarks.downstream_prefill --device cuda --dtype bfloat16 --batch-sizes 1,16
"""

from __future__ import annotations

import argparse

from ._common import environment, full_size_backbone, median, run_cli, time_ms, write_json

QUESTION = "What is the total amount due on this invoice?"


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--batch-sizes", default="1")
    parser.add_argument("--longest-edges", default="512,768,1024,1536,2048", help="2048 = SmolVLM's default (native)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--backbone", default=None)
    parser.add_argument("--output-json", default=None)


def main(args: argparse.Namespace) -> dict:
    import torch
    from transformers import AutoModelForImageTextToText

    from resgate_router.gate.smolvlm import _load_processor
    from resgate_router.testing import make_document_image

    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    backbone = args.backbone or full_size_backbone()
    model = AutoModelForImageTextToText.from_pretrained(str(backbone), dtype=dtype).to(args.device).eval()
    processor = _load_processor(backbone)
    image = make_document_image(1700, 2200, lines=60, seed=1)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    results: dict = {"env": environment(args.device), "dtype": args.dtype, "image": [1700, 2200], "rows": []}
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        for edge in [int(e) for e in args.longest_edges.split(",")]:
            enc = processor(
                text=[prompt] * batch,
                images=[[image]] * batch,
                return_tensors="pt",
                padding=True,
                size={"longest_edge": edge},
            ).to(args.device)
            enc["pixel_values"] = enc["pixel_values"].to(dtype)
            visual = int((enc["input_ids"][0] == model.config.image_token_id).sum())

            @torch.inference_mode()
            def prefill() -> object:
                return model(**enc, use_cache=False, logits_to_keep=1).logits

            times = [time_ms(prefill, args.device) for _ in range(args.warmup + args.runs)][args.warmup :]
            med = median(times)
            results["rows"].append(
                {
                    "batch": batch,
                    "longest_edge": edge,
                    "prompt_tokens": int(enc["input_ids"].shape[1]),
                    "visual_tokens": visual,
                    "median_ms": round(med, 2),
                    "all_ms": [round(t, 2) for t in times],
                }
            )
            print(
                f"batch {batch:>3}  longest_edge {edge:>5}  prompt {enc['input_ids'].shape[1]:>5} tok "
                f"({visual:>5} visual)  prefill median {med:9.1f} ms",
                flush=True,
            )
    write_json(args.output_json, results)
    return results


if __name__ == "__main__":
    run_cli(__doc__, add_cli_args, main)
