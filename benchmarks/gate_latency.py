"""Gate latency on the full-size SmolVLM-256M architecture (random weights), same image, same run.

Variants, each timed per request end to end (image preprocessing + model + pooling + head):
  reference         the CARES recipe: full model (30 layers + lm_head), output_hidden_states=True,
                    ``cares`` profile (17 tiles on SmolVLM-256M)
  fast-cares        SmolVLMGate fast path (cut after the feature layer), ``cares`` profile
  fast-single-tile  SmolVLMGate fast path, ``single-tile`` profile (one 512 tile)
  processor-cares   the fast-cares model behind transformers' processor instead of the gate's own
                    preprocessing (the rendition, then the processor at its defaults)
  processor-single-tile  the fast-single-tile model behind the processor at ``size.longest_edge=512``
  onnx-fp32         OnnxGate (``resgate export`` of that single-tile gate) on ONNX Runtime, fp32
  onnx-int8         the same, dynamically quantized to int8
  granite-lora      GraniteDoclingGate: the full-size Granite-Docling-258M architecture (random weights)
                    with a random rank-4 LoRA adapter on q/k/v/o/gate/up/down, merged; 256 px probe;
                    full 30-layer forward, lm_head rows of the 3 class tokens only
Each request is timed in two parts, preprocessing (PIL + processor, on the CPU) and model (backbone,
pooling, head, on --device); the total is their sum. Rounds interleave the variants so machine noise
hits all alike; medians and ratios vs reference (and vs fast-single-tile). ``--peak-rss`` also runs
each of fast-single-tile / onnx-* alone in a fresh process (load + predictions; the ONNX ones with
torch imports blocked) and records its peak resident memory.

    python -m benchmarks.gate_latency                      # CPU, fp32, batch 1
    python -m benchmarks.gate_latency --variants fast-single-tile,onnx-fp32,onnx-int8 --peak-rss
    python -m benchmarks.gate_latency --device cuda --dtype bfloat16 --batch-sizes 1,16
    python -m benchmarks.gate_latency --variants fast-single-tile,granite-lora   # the two seed gates
    python -m benchmarks.gate_latency --preprocess-only --runs 21 \
        --variants fast-cares,processor-cares,fast-single-tile,processor-single-tile  # own vs processor
    python -m benchmarks.gate_latency --device cuda --dtype bfloat16 --batch-sizes 1,16 \
        --variants fast-cares,fast-single-tile --downstreams smolvlm-256m,smolvlm-2.2b  # gate ms / ms saved

``--preprocessing`` (auto: the device on a GPU) and ``--compile`` set the fast-* gates' options;
the processor-* twins always preprocess on the host, as transformers does. ``--downstreams`` adds,
per downstream and batch size, its prefill at native and at ``--rung`` and the ratio users decide by:
the gate's ms per request over the prefill ms it saves per request when the page goes at the rung.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from ._common import CACHE, environment, full_size_backbone, median, run_cli, time_ms, write_json
from .peak_rss import peak_rss

VARIANTS = ("reference", "fast-cares", "fast-single-tile", "onnx-fp32", "onnx-int8", "granite-lora")
QUESTION = "What is the total amount due on this invoice?"


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--batch-sizes", default="1", help="comma-separated, e.g. 1,16")
    parser.add_argument("--runs", type=int, default=5, help="timed rounds per variant and batch size")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--backbone", default=None, help="backbone dir (default: build the random full-size one)")
    parser.add_argument("--onnx-dir", default=None, help="exported gate (default: export --backbone's once, cached)")
    parser.add_argument("--peak-rss", action="store_true", help="peak RSS of each gate alone in a fresh process")
    parser.add_argument("--rss-runs", type=int, default=3, help="predictions per --peak-rss process")
    parser.add_argument(
        "--preprocess-only", action="store_true", help="time preprocessing alone (the model runs once, untimed)"
    )
    parser.add_argument(
        "--preprocessing", default="auto", choices=["auto", "host", "device"], help="fast-*: where the pixel work runs"
    )
    parser.add_argument("--compile", action="store_true", help="fast-*: torch.compile at fixed batch buckets")
    parser.add_argument(
        "--downstreams",
        default="",
        help="also time these downstreams' prefill (benchmarks.downstream_prefill names) at native and at --rung, "
        "and report gate ms / prefill ms saved per request",
    )
    parser.add_argument("--rung", type=int, default=512, help="the rung the saving is counted for (longest edge)")
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


def _fast_gate(backbone, device, dtype, profile, **options) -> tuple[object, Callable[[object], object]]:
    """(SmolVLMGate fast path, its model call on prepared inputs)."""
    import torch

    from resgate_router.gate import SmolVLMGate

    gate = SmolVLMGate.from_backbone(backbone, profile=profile, device=device, dtype=dtype, batch_size=64, **options)

    @torch.inference_mode()
    def run(batch: object) -> object:
        return gate.forward(batch).cpu()

    return gate, run


def _fast_runner(backbone, device, dtype, profile, options: dict) -> Runner:
    gate, run = _fast_gate(backbone, device, dtype, profile, **options)
    return gate.prepare, run


def _processor_runner(backbone, device, dtype, profile) -> Runner:
    """The fast path's model, fed by transformers' processor: what the gate's own preprocessing must
    equal bit for bit (tests/test_preprocess.py) and beat on time."""
    from resgate_router.testing import processor_inputs

    gate, run = _fast_gate(backbone, device, dtype, profile, preprocessing="host")

    def prepare(images: list, questions: list) -> object:
        enc = processor_inputs(gate, images, questions)
        enc["pixel_values"] = enc["pixel_values"].to(dtype)
        return enc.to(device)

    return prepare, run


def _exported(backbone) -> tuple[Path, Path]:
    """(gate dir, ONNX dir): a single-tile gate (random head) on ``backbone`` and its export with the
    int8 copy, built once and cached."""
    gate_dir = CACHE / f"gate-{Path(backbone).name}-single-tile"
    onnx_dir = CACHE / f"onnx-{Path(backbone).name}-single-tile"
    if not (onnx_dir / "model.int8.onnx").is_file():
        import torch

        from resgate_router.gate import SmolVLMGate
        from resgate_router.gate.export import export_gate

        print(f"exporting the single-tile gate on {backbone} to {onnx_dir} ...", flush=True)
        torch.manual_seed(0)
        SmolVLMGate.from_backbone(backbone, profile="single-tile").save_pretrained(gate_dir)
        checks = export_gate(gate_dir, onnx_dir, int8=True, check_samples=8)["checks"]
        print(json.dumps(checks), flush=True)
    return gate_dir, onnx_dir


def _onnx_runner(onnx_dir, precision) -> Runner:
    from resgate_router.gate.onnx import OnnxGate

    gate = OnnxGate.from_pretrained(onnx_dir, precision=precision, batch_size=64)
    return gate.prepare, lambda inputs: gate.session.run(["logits"], inputs)[0]


def _granite_gate_dir() -> Path:
    """A Granite LoRA gate dir (random rank-4 adapter) on the full-size random Granite-Docling-258M,
    built once and cached."""
    from resgate_router.testing import build_granite_docling_258m, build_tiny_granite_gate

    base, gate_dir = CACHE / "granite-docling-258m-random", CACHE / "gate-granite-lora-r4"
    if not (base / "config.json").is_file():
        print(f"building the full-size Granite-Docling-258M architecture (random weights) in {base} ...", flush=True)
        build_granite_docling_258m(base)
    if not (gate_dir / "adapter_model.safetensors").is_file():
        build_tiny_granite_gate(gate_dir, base=base.resolve(), rank=4)
    return gate_dir


def _granite_runner(device, dtype, info: dict) -> Runner:
    import torch

    from resgate_router.gate import GraniteDoclingGate

    gate = GraniteDoclingGate.from_pretrained(_granite_gate_dir(), device=device, dtype=dtype, batch_size=64)
    info["granite_lora"] = {
        "base_params": sum(p.numel() for p in gate.model.parameters()),
        "lora_params": sum(v.numel() for v in gate.adapter_state().values()),
        "rank": gate.lora_config.r,
        "merged": gate.merged,
        "probe_size": gate.config.probe_size,
    }

    @torch.inference_mode()
    def run(batch: object) -> object:
        return gate.class_logits(batch).cpu()

    return gate.prepare, run


def _gate_cost(args: argparse.Namespace, dtype, image, rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """Each downstream's prefill at native and at ``--rung`` (same page, same batch sizes, same device),
    and for every gate row the ratio of its ms per request to the prefill ms it saves per request."""
    from .downstream_prefill import load_downstream, native_edge, prefill

    prefills, costs = [], []
    for name in [d for d in args.downstreams.split(",") if d]:
        model, processor = load_downstream(name, args.device, dtype)
        for batch in sorted({row["batch"] for row in rows}):
            native, cheap = (
                prefill(model, processor, image, batch, e, args) for e in (native_edge(processor), args.rung)
            )
            saved = (native["median_ms"] - cheap["median_ms"]) / batch
            prefills += [{"downstream": name, **native, "native": True}, {"downstream": name, **cheap, "native": False}]
            for row in (r for r in rows if r["batch"] == batch):
                ratio = round(row["ms_per_request"] / saved, 3) if saved > 0 else None
                costs.append(
                    {
                        "variant": row["variant"],
                        "batch": batch,
                        "downstream": name,
                        "rung": args.rung,
                        "gate_ms_per_request": row["ms_per_request"],
                        "prefill_ms_saved_per_request": round(saved, 2),
                        "gate_ms_per_prefill_ms_saved": ratio,
                    }
                )
                print(
                    f"batch {batch:>3}  {row['variant']:<17} on {name}: gate {row['ms_per_request']:.1f} ms / "
                    f"prefill saved {saved:.1f} ms per request (native {native['visual_tokens']} -> "
                    f"{cheap['visual_tokens']} visual tokens) = {ratio}",
                    flush=True,
                )
        del model
    return prefills, costs


def _onnx_versions(variants: list[str]) -> dict:
    if not any(v.startswith("onnx") for v in variants):
        return {}
    import onnxruntime

    return {"onnxruntime": onnxruntime.__version__}


def _rss_paths(variants: list[str], backbone, onnx_dir: Path | None) -> dict[str, Path]:
    """The saved gate each of fast-single-tile / onnx-* loads in its own process."""
    paths = {}
    for variant in [v for v in ("fast-single-tile", "onnx-fp32", "onnx-int8") if v in variants]:
        gate_dir, exported = _exported(backbone) if onnx_dir is None else (None, onnx_dir)
        path = exported if variant.startswith("onnx") else gate_dir
        if path is not None:  # a given --onnx-dir has no PyTorch gate dir beside it
            paths[variant] = path
    return paths


def main(args: argparse.Namespace) -> dict:
    import torch

    from resgate_router.testing import make_document_image

    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    backbone = args.backbone or full_size_backbone()
    variants = [v for v in args.variants.split(",") if v]
    builders = {
        "reference": lambda: _reference_runner(backbone, args.device, dtype),
        "fast-cares": lambda: _fast_runner(backbone, args.device, dtype, "cares", options),
        "fast-single-tile": lambda: _fast_runner(backbone, args.device, dtype, "single-tile", options),
        "processor-cares": lambda: _processor_runner(backbone, args.device, dtype, "cares"),
        "processor-single-tile": lambda: _processor_runner(backbone, args.device, dtype, "single-tile"),
        "onnx-fp32": lambda: _onnx_runner(args.onnx_dir or _exported(backbone)[1], "fp32"),
        "onnx-int8": lambda: _onnx_runner(args.onnx_dir or _exported(backbone)[1], "int8"),
        "granite-lora": lambda: _granite_runner(args.device, dtype, info),
    }
    info: dict = {}
    options = {"preprocessing": args.preprocessing, "compile": args.compile}
    runners = {v: builders[v]() for v in variants}
    image = make_document_image(1700, 2200, lines=60, seed=1)
    results: dict = {
        "env": environment(args.device) | _onnx_versions(variants),
        "dtype": args.dtype,
        "image": [1700, 2200],
        "runs": args.runs,
        "preprocess_only": args.preprocess_only,
        "fast_options": options,
        **info,
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
                if args.preprocess_only and round_index > 0:
                    model = 0.0  # the model ran in round 0 (a check that the inputs fit), not since
                else:
                    model = time_ms(lambda: run(box[0]), args.device)
                if round_index >= args.warmup:
                    times[variant].append(prep + model)
                    prep_times[variant].append(prep)
        base = median(times["reference"]) if "reference" in times else None
        torch_fast = median(times["fast-single-tile"]) if "fast-single-tile" in times else None
        for variant in variants:
            med = median(times[variant])
            twin = variant.replace("fast-", "processor-")  # the same model behind transformers' processor
            prep_vs_processor = (
                round(median(prep_times[twin]) / median(prep_times[variant]), 2) if twin in prep_times else None
            )
            row = {
                "variant": variant,
                "batch": batch,
                "median_ms": round(med, 2),
                "ms_per_request": round(med / batch, 2),
                "preprocess_median_ms": round(median(prep_times[variant]), 2),
                "all_ms": [round(t, 2) for t in times[variant]],
                "ratio_vs_reference": round(med / base, 4) if base else None,
                "speedup_vs_reference": round(base / med, 2) if base else None,
                "speedup_vs_fast_single_tile": round(torch_fast / med, 2) if torch_fast else None,
                "preprocess_speedup_vs_processor": prep_vs_processor if twin != variant else None,
            }
            results["rows"].append(row)
            print(
                f"batch {batch:>3}  {variant:<17} median {med:10.1f} ms  ({med / batch:9.1f} ms/request, "
                f"preprocessing {median(prep_times[variant]):8.1f} ms)"
                + (f"  x{base / med:6.2f} vs reference" if base else "")
                + (f"  x{torch_fast / med:5.2f} vs fast-single-tile" if torch_fast else "")
                + (
                    f"  preprocessing x{prep_vs_processor:5.2f} vs the processor"
                    if twin != variant and prep_vs_processor
                    else ""
                ),
                flush=True,
            )
    if args.downstreams:
        results["prefill"], results["gate_cost"] = _gate_cost(args, dtype, image, results["rows"])
    if args.peak_rss:
        results["peak_rss"] = peak_rss(
            _rss_paths(variants, backbone, args.onnx_dir and Path(args.onnx_dir)), args.rss_runs
        )
    write_json(args.output_json, results)
    return results


if __name__ == "__main__":
    run_cli(__doc__, add_cli_args, main)
