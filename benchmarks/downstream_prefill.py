"""Downstream cost per rung: visual tokens and prefill latency of a full-size downstream architecture
(random weights, built from its real config: FLOPs do not depend on the weights) on one 1700x2200
page, at each ``size.longest_edge`` the router can set. This is what a gate decision buys.

Downstreams (``--downstreams``): ``smolvlm-256m`` (SmolVLM-256M-Instruct, 512 px tiles, native
longest edge 2048) and ``smolvlm-2.2b`` (SmolVLM-Instruct, 2.2B: SigLIP so400m 384 px tiles,
SmolLM2-1.7B, native 1536; see ``resgate_router.testing.smolvlm_2b_config`` for where its numbers
come from). ``native`` in ``--longest-edges`` is the downstream's own default.

    python -m benchmarks.downstream_prefill --device cuda --dtype bfloat16 --batch-sizes 1,16 \
        --downstreams smolvlm-256m,smolvlm-2.2b
"""

from __future__ import annotations

import argparse
from typing import Any

from ._common import environment, full_size_backbone, median, run_cli, time_ms, write_json

QUESTION = "What is the total amount due on this invoice?"
DOWNSTREAMS = ("smolvlm-256m", "smolvlm-2.2b")


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--batch-sizes", default="1")
    parser.add_argument("--longest-edges", default="512,768,1024,1536,native", help="native = the model's default")
    parser.add_argument("--downstreams", default="smolvlm-256m", help=f"comma-separated, of {', '.join(DOWNSTREAMS)}")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--backbone", default=None, help="smolvlm-256m: a model dir instead of the random one")
    parser.add_argument("--output-json", default=None)


def load_downstream(name: str, device: str, dtype: Any, backbone: str | None = None) -> tuple[Any, Any]:
    """(model, processor) of a named downstream with random weights, built on ``device``."""
    import torch
    from transformers import AutoModelForImageTextToText

    from resgate_router.gate.smolvlm import _load_processor

    if name == "smolvlm-256m":
        path = backbone or full_size_backbone()
        model = AutoModelForImageTextToText.from_pretrained(str(path), dtype=dtype)
        return model.to(device).eval(), _load_processor(path)
    if name == "smolvlm-2.2b":
        from resgate_router.testing import build_processor, build_tokenizer
        from resgate_router.tools.model_configs import smolvlm_2b_config

        # SmolVLM's special tokens sit at 49152+ here as in the 256M tokenizer: 125 more embedding rows
        # than the real 49,155 (0.01% of the parameters, and no prefill cost: logits_to_keep=1)
        tokenizer = build_tokenizer(base_size=49152, vocab_size=49280)
        config = smolvlm_2b_config(image_token_id=tokenizer.convert_tokens_to_ids("<image>"), vocab_size=len(tokenizer))
        torch.manual_seed(0)
        with torch.device(device):  # initialised where it runs: no 9 GB round trip through the disk
            model = AutoModelForImageTextToText.from_config(config, dtype=dtype)
        processor = build_processor(tokenizer, longest_edge=1536, tile=384, image_seq_len=81)
        processor.tokenizer.padding_side = "right"
        return model.eval(), processor
    raise SystemExit(f"unknown downstream {name!r}: expected one of {', '.join(DOWNSTREAMS)}")


def native_edge(processor: Any) -> int:
    return int(processor.image_processor.size["longest_edge"])


def prefill(model: Any, processor: Any, image: Any, batch: int, edge: int, args: argparse.Namespace) -> dict:
    """Median prefill ms (the whole prompt, ``logits_to_keep=1``) of ``batch`` copies of the page."""
    import torch

    dtype = next(model.parameters()).dtype
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    enc = processor(
        text=[prompt] * batch, images=[[image]] * batch, return_tensors="pt", padding=True, size={"longest_edge": edge}
    ).to(args.device)
    enc["pixel_values"] = enc["pixel_values"].to(dtype)

    @torch.inference_mode()
    def run() -> object:
        return model(**enc, use_cache=False, logits_to_keep=1).logits

    times = [time_ms(run, args.device) for _ in range(args.warmup + args.runs)][args.warmup :]
    return {
        "batch": batch,
        "longest_edge": edge,
        "prompt_tokens": int(enc["input_ids"].shape[1]),
        "visual_tokens": int((enc["input_ids"][0] == model.config.image_token_id).sum()),
        "median_ms": round(median(times), 2),
        "all_ms": [round(t, 2) for t in times],
    }


def main(args: argparse.Namespace) -> dict:
    import torch

    from resgate_router.testing import make_document_image

    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    image = make_document_image(1700, 2200, lines=60, seed=1)
    results: dict = {"env": environment(args.device), "dtype": args.dtype, "image": [1700, 2200], "rows": []}
    for name in [d for d in args.downstreams.split(",") if d]:
        model, processor = load_downstream(name, args.device, dtype, args.backbone)
        params = sum(p.numel() for p in model.parameters())
        edges = [native_edge(processor) if e == "native" else int(e) for e in args.longest_edges.split(",")]
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
            for edge in dict.fromkeys(edges):
                row = {"downstream": name, "params": params, **prefill(model, processor, image, batch, edge, args)}
                row["native"] = edge == native_edge(processor)
                results["rows"].append(row)
                print(
                    f"{name:<13} batch {batch:>3}  longest_edge {edge:>5}{'*' if row['native'] else ' '} "
                    f"prompt {row['prompt_tokens']:>5} tok ({row['visual_tokens']:>5} visual)  "
                    f"prefill median {row['median_ms']:9.1f} ms",
                    flush=True,
                )
        del model
    write_json(args.output_json, results)
    return results


if __name__ == "__main__":
    run_cli(__doc__, add_cli_args, main)
