"""Token accounting vs the real transformers processors, on a grid of image sizes.

For every (size, rung) the policy's ``visual_tokens`` is compared with what the real processor
produces for that image at that setting (idefics3: the expansion of ``<image>`` in the prompt, with the
tiny SmolVLM tokenizer/processor built offline; qwen2_vl: ``image_grid_thw`` / merge^2), and so is the
count of the *planned* request (pre-resized image + processor kwargs). Prints the mismatch count,
which must be 0.

    python -m benchmarks.accounting [--output-json benchmarks/results/accounting.json]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile

from ._common import environment, run_cli, write_json

SIDES = [1, 7, 50, 223, 384, 511, 512, 513, 777, 1000, 1024, 1700, 2200, 4100, 9000]
RUNGS = ["full", 384, 512, 768, 1024]


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-area", type=int, default=20_000_000, help="skip sizes above this many pixels")
    parser.add_argument("--output-json", default=None)


def _idefics3_counter(directory):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(directory)
    empty = len(processor.tokenizer("").input_ids)
    return lambda image, kwargs: len(processor(text=["<image>"], images=[[image]], **kwargs)["input_ids"][0]) - empty


def _qwen2_counter():
    from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil

    processor = Qwen2VLImageProcessorPil()
    return lambda image, kwargs: (
        int(processor(images=[image], return_tensors="np", **kwargs)["image_grid_thw"][0].prod()) // 4
    )


def main(args: argparse.Namespace) -> dict:
    from PIL import Image
    from tqdm import tqdm

    from resgate_router import ImageError, get_policy
    from resgate_router.testing import build_tiny_smolvlm

    with tempfile.TemporaryDirectory() as tmp:
        backbone = build_tiny_smolvlm(tmp)
        families = {
            "idefics3": (get_policy(model=backbone), _idefics3_counter(backbone)),
            "qwen2_vl": (get_policy("qwen2_vl"), _qwen2_counter()),
        }
        sizes = [(w, h) for w, h in itertools.product(SIDES, SIDES) if w * h <= args.max_area]
        results: dict = {"env": environment("cpu"), "sizes": len(sizes), "rungs": RUNGS, "families": {}}
        for name, (policy, count) in families.items():
            checks = mismatches = refused = 0
            examples = []
            for (width, height), rung in tqdm(list(itertools.product(sizes, RUNGS)), desc=name, leave=False):
                try:
                    plan = policy.plan([(width, height)], [rung])
                except ImageError:  # e.g. qwen2_vl refuses aspect ratios over 200; so does its processor
                    refused += 1
                    continue
                image_plan = plan.images[0]
                edge = plan.processor_kwargs.get("size", {}).get("longest_edge") if name == "idefics3" else None
                original_kwargs = {"size": {"longest_edge": edge}} if edge else {}
                if name == "idefics3":
                    real = count(Image.new("RGB", (width, height), "white"), original_kwargs)
                else:
                    real = count(Image.new("RGB", image_plan.send_size, "white"), {})
                applied = count(Image.new("RGB", image_plan.send_size, "white"), plan.processor_kwargs)
                checks += 2
                for label, value in (("original", real), ("applied", applied)):
                    if value != image_plan.tokens:
                        mismatches += 1
                        examples.append(
                            {
                                "size": [width, height],
                                "rung": rung,
                                "check": label,
                                "real": value,
                                "predicted": image_plan.tokens,
                            }
                        )
            results["families"][name] = {
                "checks": checks,
                "mismatches": mismatches,
                "refused": refused,
                "examples": examples[:20],
            }
            print(
                f"{name:<9} {len(sizes)} sizes x {len(RUNGS)} rungs: {checks} checks, {mismatches} mismatches"
                f" ({refused} refused by the family's own limits)",
                flush=True,
            )
    write_json(args.output_json, results)
    return results


if __name__ == "__main__":
    run_cli(__doc__, add_cli_args, main)
