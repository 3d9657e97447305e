"""The gates' own preprocessing against transformers' processor on a data set's real images: for each
(image, question) and each profile, whether the host path's and the device path's ``pixel_values`` and
``input_ids`` equal the processor's bit for bit, their largest difference, and whether a fixed head's
decision is unchanged (a seeded random head on ``--backbone``; the tiny test backbone by default,
since equal inputs give equal decisions on any backbone).

    python -m benchmarks.preprocess_decisions --data ../shared/data/realdocs \
        --output-json benchmarks/results/preprocess_decisions_realdocs.json
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ._common import environment, run_cli, write_json


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="a resgate data set (qa.jsonl + images)")
    parser.add_argument("--profiles", default="cares,single-tile")
    parser.add_argument("--backbone", default=None, help="backbone dir (default: build the tiny test backbone)")
    parser.add_argument("--limit", type=int, default=None, help="first N items only")
    parser.add_argument("--output-json", default=None)


def _compare(gate, ours, theirs) -> dict:
    import torch

    same = all(torch.equal(ours[k].cpu(), theirs[k]) for k in ("input_ids", "attention_mask", "pixel_values"))
    shape_ok = ours["pixel_values"].shape == theirs["pixel_values"].shape
    delta = (ours["pixel_values"].cpu() - theirs["pixel_values"]).abs() if shape_ok else None
    with torch.inference_mode():
        a = gate.model(**{k: v.to(gate.device) for k, v in ours.items()}).logits.argmax(-1)
        b = gate.model(**{k: v.to(gate.device) for k, v in theirs.items()}).logits.argmax(-1)
    return {
        "bit_identical": same,
        "max_abs_delta": float(delta.max()) if delta is not None else None,
        "mean_abs_delta": float(delta.mean()) if delta is not None else None,
        "decision_unchanged": bool((a == b).all()),
    }


def main(args: argparse.Namespace) -> dict:
    import torch
    from tqdm import tqdm

    from resgate_router import SmolVLMGate, load_image
    from resgate_router.testing import build_tiny_gate, processor_inputs
    from resgate_router.tools.datasets import load_samples

    data = Path(args.data)
    samples = load_samples(data / "qa.jsonl" if data.is_dir() else data).samples[: args.limit]
    with tempfile.TemporaryDirectory() as tmp:
        gate_dir = build_tiny_gate(Path(tmp) / "gate", backbone=args.backbone, seed=0)
        torch.manual_seed(0)
        results: dict = {"env": environment("cpu"), "data": args.data, "items": len(samples), "profiles": {}}
        for profile in args.profiles.split(","):
            gates = {
                p: SmolVLMGate.from_pretrained(gate_dir, profile=profile, preprocessing=p) for p in ("host", "device")
            }
            rows = {p: [] for p in gates}
            for sample in tqdm(samples, desc=profile, unit="item"):
                image = load_image(sample.image)
                theirs = processor_inputs(gates["host"], [image], [sample.question])
                for path, gate in gates.items():
                    rows[path].append(
                        {"id": sample.id, **_compare(gate, gate.prepare([image], [sample.question]), theirs)}
                    )
            results["profiles"][profile] = {
                path: {
                    "bit_identical": sum(r["bit_identical"] for r in rs),
                    "decisions_unchanged": sum(r["decision_unchanged"] for r in rs),
                    "max_abs_delta": max((r["max_abs_delta"] or 0.0) for r in rs),
                    "items": len(rs),
                    "differing": [r for r in rs if not r["bit_identical"]],
                }
                for path, rs in rows.items()
            }
            for path, summary in results["profiles"][profile].items():
                print(
                    f"{profile:<12} {path:<6} bit-identical {summary['bit_identical']}/{summary['items']}, "
                    f"decisions unchanged {summary['decisions_unchanged']}/{summary['items']}, "
                    f"max |delta| {summary['max_abs_delta']:.6f}",
                    flush=True,
                )
    write_json(args.output_json, results)
    return results


if __name__ == "__main__":
    run_cli(__doc__, add_cli_args, main)
