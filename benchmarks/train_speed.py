"""Seconds per training epoch: the reference recipe vs cached features, same data, same backbone.

  reference  what the CARES code does with the HF Trainer: every epoch, every sample goes through the
             whole frozen model (all 30 layers + lm_head, ``output_hidden_states=True``), hidden state
             15 is pooled, then the head takes its AdamW step; validation does the same forward.
             (Charitable to it: the frozen forward runs under ``no_grad``, as the Trainer's autograd
             would skip it anyway.)
  cached     ``resgate train``: epoch 1 extracts the pooled features once (backbone cut after layer 15)
             and stores them; every epoch then trains the head on the stored features.
Both use the full-size SmolVLM-256M architecture (random weights: FLOPs do not depend on them), the
same generated pages and questions, the same preprocessing (profile), split, head, optimizer and
batch size. Per-epoch ratios are reference / cached; the target is >= 50x from the second epoch on.

    python -m benchmarks.train_speed --output-json benchmarks/results/train_speed_cpu.json
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from ._common import environment, full_size_backbone, run_cli, write_json

QUESTIONS = ["What is the total amount due?", "What is the invoice date?", "Who signed the form?"]


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the cached recipe")
    parser.add_argument("--reference-epochs", type=int, default=2, help="epochs of the reference (all alike)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--val-frac", type=float, default=0.25)
    parser.add_argument("--profile", default="single-tile", choices=["single-tile", "cares"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--backbone", default=None, help="backbone dir (default: build the random full-size one)")
    parser.add_argument("--output-json", default=None)


def _write_data(directory: Path, n: int) -> Path:
    import json

    from resgate_router.testing import make_document_image

    rows = []
    for i in range(n):
        make_document_image(850, 1100, lines=30, seed=i).save(directory / f"{i}.png")
        rows.append({"id": str(i), "image": f"{i}.png", "question": QUESTIONS[i % 3], "label": i % 3})
    path = directory / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _reference_epochs(gate, backbone, samples, split, config, device, dtype, epochs) -> tuple[list[float], object]:
    """The reference recipe's epochs; returns their seconds and the pooled features of epoch 1."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForImageTextToText

    from resgate_router.gate.model import make_head, masked_mean_pool
    from resgate_router.tools.training.trainer import class_logits, class_weights

    model = AutoModelForImageTextToText.from_pretrained(str(backbone), dtype=dtype).to(device).eval()
    layer = gate.model.backbone.layer
    labels = torch.tensor([s.label for s in samples])
    weights = torch.tensor(class_weights(labels[split.train].numpy(), 3, "balanced"), dtype=torch.float32)
    torch.manual_seed(config.seed)
    head = make_head(gate.model.backbone.feature_dim, 256, 3)
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    pooled_epoch1 = torch.zeros(len(samples), gate.model.backbone.feature_dim)

    def pooled(rows) -> torch.Tensor:
        batch = gate.prepare([samples[r].image for r in rows], [samples[r].question for r in rows])
        with torch.no_grad():
            out = model(**batch, output_hidden_states=True, use_cache=False, return_dict=True)
            ids, mask = batch["input_ids"], batch["attention_mask"]
            return masked_mean_pool(out.hidden_states[layer], ids, mask, gate.model.backbone.image_token_id).cpu()

    seconds = []
    for epoch in range(epochs):
        started = time.perf_counter()
        order = torch.from_numpy(split.train)[torch.randperm(len(split.train), generator=generator)].tolist()
        head.train()
        for start in range(0, len(order), config.batch_size):
            rows = order[start : start + config.batch_size]
            features = pooled(rows)
            if epoch == 0:
                pooled_epoch1[rows] = features
            loss = F.cross_entropy(class_logits(head(features)), labels[rows], weight=weights)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        head.eval()
        for start in range(0, len(split.val), config.batch_size):
            rows = split.val[start : start + config.batch_size].tolist()
            features = pooled(rows)
            if epoch == 0:
                pooled_epoch1[rows] = features
            with torch.no_grad():
                head(features)
        seconds.append(time.perf_counter() - started)
        print(f"reference epoch {epoch + 1}: {seconds[-1]:.1f} s", flush=True)
    return seconds, pooled_epoch1


def main(args: argparse.Namespace) -> dict:
    import torch

    from resgate_router.gate import SmolVLMGate
    from resgate_router.tools.datasets import load_samples
    from resgate_router.tools.training.features import extract_features
    from resgate_router.tools.training.trainer import TrainConfig, split_indices, train_head

    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    backbone = Path(args.backbone) if args.backbone else full_size_backbone()
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, val_frac=args.val_frac)
    with tempfile.TemporaryDirectory() as tmp:
        samples = load_samples(_write_data(Path(tmp), args.samples), require_label=True).samples
        gate = SmolVLMGate.from_backbone(backbone, profile=args.profile, device=args.device, dtype=dtype)
        started = time.perf_counter()
        features = extract_features(gate, samples, cache_dir=Path(tmp) / "cache", batch_size=args.batch_size)
        extract_s = time.perf_counter() - started
        started = time.perf_counter()
        warm = extract_features(gate, samples, cache_dir=Path(tmp) / "cache", progress=False)
        warm_read_s = time.perf_counter() - started
        assert warm.extracted == 0 and torch.equal(warm.features, features.features)
        result = train_head(features.features, features.labels, 3, config)
        cached = [h["seconds"] for h in result.history]
        cached[0] += extract_s
        split = split_indices(features.labels.numpy(), config.val_frac, config.seed)
        reference, pooled = _reference_epochs(
            gate, backbone, samples, split, config, args.device, dtype, args.reference_epochs
        )
    ref_epoch = statistics.median(reference)
    rows = [
        {
            "epoch": e + 1,
            "cached_s": round(cached[e], 6),
            "reference_s": round(reference[e], 3) if e < len(reference) else None,
            "ratio": round((reference[e] if e < len(reference) else ref_epoch) / cached[e], 1),
        }
        for e in range(args.epochs)
    ]
    results = {
        "env": environment(args.device),
        "dtype": args.dtype,
        "profile": args.profile,
        "samples": args.samples,
        "split": {"train": len(split.train), "val": len(split.val)},
        "batch_size": args.batch_size,
        "backbone": str(backbone),
        "layer": gate.model.backbone.layer,
        "extract_s": round(extract_s, 3),
        "warm_cache_read_s": round(warm_read_s, 4),
        "reference_epoch_median_s": round(ref_epoch, 3),
        "features_max_abs_diff": float((pooled - features.features).abs().max()),
        "epochs": rows,
        "min_ratio_from_epoch_2": min(r["ratio"] for r in rows[1:]) if len(rows) > 1 else None,
        "total_s": {"cached": round(sum(cached), 3), "reference_for_same_epochs": round(ref_epoch * args.epochs, 3)},
    }
    for row in rows:
        measured = row["reference_s"] is not None
        reference_text = f"{row['reference_s']:.1f} s" if measured else f"{ref_epoch:.1f} s (median epoch)"
        print(f"epoch {row['epoch']}: cached {row['cached_s']:.4f} s, reference {reference_text} -> x{row['ratio']}")
    print(f"features: reference vs cached max |diff| {results['features_max_abs_diff']:.2e}")
    write_json(args.output_json, results)
    return results


if __name__ == "__main__":
    run_cli(__doc__, add_cli_args, main)
