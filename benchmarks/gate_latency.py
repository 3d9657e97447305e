"""Gate latency on the full-size SmolVLM-256M architecture (random weights), same image, same run.

Variants, each timed per request end to end (image preprocessing + model + pooling + head):
  reference         the CARES recipe: full model (30 layers + lm_head), output_hidden_states=True,
                    ``cares`` profile (17 tiles on SmolVLM-256M)
  fast-cares        SmolVLMGate fast path (cut after the feature layer), ``cares`` profile
  fast-single-tile  SmolVLMGate fast path, ``single-tile`` profile (one 512 tile)
Each request is timed in two parts, preprocessing (PIL + processor, on the CPU) and model (backbone,
pooling, head, on --device); the total is their sum. Rounds interleave the variants so machine noise
hits all alike; medians and ratios vs reference.

    python -m benchmarks.gate_latency                      # CPU, fp32, batch 1
    python -m benchmarks.gate_latency --device cuda --dtype bfloat16 --batch-sizes 1,16
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ._common import environment, full_size_backbone, median, run_cli, time_ms, write_json

VARIANTS = ("reference", "fast-cares", "fast-single-tile")
QUESTION = "What is the total amount due on this invoice?"


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--batch-sizes", default="1", help="comma-separated, e.g. 1,16")
    parser.add_argument("--runs", type=int, default=5, help="timed rounds per variant and batch size")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--backbone", default=None, help="backbone dir (default: build the random full-size one)")
    parser.add_argument("--output-json", default=None)


Runner = tuple[Callable[[list, list], object], Callable[[object], object]]  # (prepare, model)


def _reference_runner(backbone, device, dtype) -> Runner:
    """The reference recipe, built from the library's preprocessing and pooling but the full model."""
    import torch
    from transformers import AutoModelForImageTextToText

    from resgate_router.gate.model import masked_mean_pool
    from resgate_router.gate.profiles import cares_canvas
    from resgate_router.gate.smolvlm import _load_processor

    model = AutoModelForImageTextToText.from_pretrained(str(backbone), dtype=dtype).to(device).eval()
    processor = _load_processor(backbone)
    layer = model.config.text_config.num_hidden_layers // 2
    d = model.config.text_config.hidden_size
    head = torch.nn.Sequential(
        torch.nn.LayerNorm(d), torch.nn.Linear(d, 256), torch.nn.GELU(), torch.nn.Linear(256, 3)
    ).to(device)
    template = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]

    def prepare(images: list, questions: list) -> object:
        prompts = [processor.apply_chat_template(template, add_generation_prompt=False) for _ in questions]
        enc = processor(text=prompts, images=[[cares_canvas(im)] for im in images], padding=True, return_tensors="pt")
        enc["pixel_values"] = enc["pixel_values"].to(dtype)
        return enc.to(device)

    @torch.inference_mode()
    def run(enc: object) -> object:
        out = model(**enc, output_hidden_states=True, use_cache=False, return_dict=True)
        pooled = masked_mean_pool(
            out.hidden_states[layer], enc["input_ids"], enc["attention_mask"], model.config.image_token_id
        )
        return head(pooled).cpu()

    return prepare, run


def _fast_runner(backbone, device, dtype, profile) -> Runner:
    import torch

    from resgate_router.gate import SmolVLMGate

    gate = SmolVLMGate.from_backbone(backbone, profile=profile, device=device, dtype=dtype, batch_size=64)

    @torch.inference_mode()
    def run(batch: object) -> object:
        return gate.model(**batch).logits.cpu()

    return gate.prepare, run


def main(args: argparse.Namespace) -> dict:
    import torch

    from resgate_router.testing import make_document_image

    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    backbone = args.backbone or full_size_backbone()
    variants = [v for v in args.variants.split(",") if v]
    builders = {
        "reference": lambda: _reference_runner(backbone, args.device, dtype),
        "fast-cares": lambda: _fast_runner(backbone, args.device, dtype, "cares"),
        "fast-single-tile": lambda: _fast_runner(backbone, args.device, dtype, "single-tile"),
    }
    runners = {v: builders[v]() for v in variants}
    image = make_document_image(1700, 2200, lines=60, seed=1)
    results: dict = {
        "env": environment(args.device),
        "dtype": args.dtype,
        "image": [1700, 2200],
        "runs": args.runs,
        "rows": [],
    }
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        images, questions = [image] * batch, [QUESTION] * batch
        times: dict[str, list[float]] = {v: [] for v in variants}
        prep_times: dict[str, list[float]] = {v: [] for v in variants}
        for round_index in range(args.warmup + args.runs):
            for variant in variants:
                prepare, run = runners[variant]
                box: list = []
                prep = time_ms(lambda: box.append(prepare(images, questions)), args.device)
                model = time_ms(lambda: run(box[0]), args.device)
                if round_index >= args.warmup:
                    times[variant].append(prep + model)
                    prep_times[variant].append(prep)
        base = median(times["reference"]) if "reference" in times else None
        for variant in variants:
            med = median(times[variant])
            row = {
                "variant": variant,
                "batch": batch,
                "median_ms": round(med, 2),
                "ms_per_request": round(med / batch, 2),
                "preprocess_median_ms": round(median(prep_times[variant]), 2),
                "all_ms": [round(t, 2) for t in times[variant]],
                "ratio_vs_reference": round(med / base, 4) if base else None,
                "speedup_vs_reference": round(base / med, 2) if base else None,
            }
            results["rows"].append(row)
            print(
                f"batch {batch:>3}  {variant:<17} median {med:10.1f} ms  ({med / batch:9.1f} ms/request, "
                f"preprocessing {median(prep_times[variant]):8.1f} ms)"
                + (f"  x{base / med:6.2f} vs reference" if base else ""),
                flush=True,
            )
    write_json(args.output_json, results)
    return results


if __name__ == "__main__":
    run_cli(__doc__, add_cli_args, main)
