"""Training the Granite LoRA gate end to end: the base model stays frozen, only the LoRA weights learn
to answer the class token after the gate's prompt.

The loss is the language-model loss of the answer token (cross-entropy over the whole vocabulary, so
the adapter also answers the digit when sampled), class-weighted like the MLP head's; the gate reads
the softmax over the class tokens only, and validation, best-epoch selection (macro recall) and the
outputs (``metrics.json``, ``confusion_matrix.png``, the gate directory) are the MLP trainer's. There
is no feature cache: every epoch runs the model. Probes (longest side ``probe_size``) are decoded once
and kept in memory, about 200 KB per sample at 256 px.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import GateError, ImageError
from ...gate.granite import DEFAULT_PROMPT, TARGET_MODULES, GraniteDoclingGate
from ...ladder import Ladder
from ..datasets import DataError, Sample
from .pipeline import check_two_classes, data_report, load_training_data, write_training_report
from .trainer import TrainConfig, class_weights, run_epochs, split_indices

__all__ = ["LoraSettings", "LORA_TRAIN_DEFAULTS", "ProbeSet", "load_probes", "train_granite_gate"]

#: Our defaults for the LoRA run (the card gives none): the MLP head's 64 x 6 epochs at 1e-4 fit a
#: 258M-parameter forward pass badly.
LORA_TRAIN_DEFAULTS: dict[str, Any] = {"epochs": 3, "batch_size": 8, "lr": 2e-4}


@dataclass
class LoraSettings:
    """LoRA hyper-parameters; defaults from the model card (rank 4, alpha 16, dropout 0.05)."""

    rank: int = 4
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = TARGET_MODULES


@dataclass
class ProbeSet:
    """The samples whose image could be read, with their probes; ``skipped``: "id: reason"."""

    samples: list[Sample]
    probes: list[Any]
    skipped: list[str] = field(default_factory=list)

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor([s.label for s in self.samples], dtype=torch.long)


def load_probes(gate: GraniteDoclingGate, samples: list[Sample], *, strict: bool, progress: bool) -> ProbeSet:
    """Decode every image once into the gate's probe; unreadable ones are skipped (``strict``: raised)."""
    from tqdm.auto import tqdm

    result = ProbeSet([], [])
    for sample in tqdm(samples, unit="sample", desc="loading probes", disable=not progress):
        try:
            probe = gate.probe(sample.image)
        except (ImageError, OSError) as exc:
            if strict:
                raise DataError(f"sample {sample.id!r}: {exc}") from exc
            result.skipped.append(f"{sample.id}: {exc}")
            continue
        result.samples.append(sample)
        result.probes.append(probe)
    return result


def _answer_logits(gate: GraniteDoclingGate, probes: list[Any], questions: list[str]) -> torch.Tensor:
    """Next-token logits over the whole vocabulary at the end of each prompt: (batch, vocab)."""
    batch = gate.prepare(probes, questions)
    return gate.core.lm_head(gate.last_hidden(batch)).float()


def _fit_epoch(gate, optimizer, data: ProbeSet, order: list[int], targets, weights, config, bar) -> float:
    gate.model.train()
    total = 0.0
    for start in range(0, len(order), config.batch_size):
        rows = order[start : start + config.batch_size]
        logits = _answer_logits(gate, [data.probes[i] for i in rows], [data.samples[i].question for i in rows])
        loss = F.cross_entropy(
            logits, targets[rows].to(logits.device), weight=weights, label_smoothing=config.label_smoothing
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(rows)
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
    return total / len(order)


@torch.no_grad()
def _evaluate(gate, data: ProbeSet, rows: list[int], targets, batch_size: int) -> tuple[float, np.ndarray]:
    """(answer-token loss, softmax over the class tokens) on ``rows``."""
    gate.model.eval()
    losses, probs = [], []
    ids = torch.tensor(gate.class_ids)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        logits = _answer_logits(gate, [data.probes[i] for i in chunk], [data.samples[i].question for i in chunk])
        losses.append(F.cross_entropy(logits, targets[chunk].to(logits.device), reduction="sum").item())
        probs.append(torch.softmax(logits[:, ids.to(logits.device)], dim=-1).cpu())
    return sum(losses) / len(rows), torch.cat(probs).numpy()


def _adapter_copy(model: Any) -> dict[str, torch.Tensor]:
    from peft import get_peft_model_state_dict

    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(model, save_embedding_layers=False).items()}


def _train(gate: GraniteDoclingGate, data: ProbeSet, config: TrainConfig, progress: bool) -> dict[str, Any]:
    from peft import set_peft_model_state_dict
    from tqdm.auto import tqdm

    num_classes = len(gate.ladder)
    y = data.labels.numpy()
    split = split_indices(y, config.val_frac, config.seed)
    weights = class_weights(y[split.train], num_classes, config.class_weights)
    vocab = gate.core.lm_head.out_features
    vocab_weights = torch.ones(vocab, device=gate.device)
    vocab_weights[torch.tensor(gate.class_ids)] = torch.tensor(weights, device=gate.device)
    targets = torch.tensor(gate.class_ids)[data.labels]  # the answer token of each sample
    params = [p for p in gate.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    train_rows, val_rows = split.train.tolist(), split.val.tolist()
    steps = config.epochs * -(-len(train_rows) // config.batch_size)

    def fit_epoch() -> float:
        order = [train_rows[i] for i in torch.randperm(len(train_rows), generator=generator).tolist()]
        return _fit_epoch(gate, optimizer, data, order, targets, vocab_weights, config, bar)

    with tqdm(total=steps, unit="batch", desc="training LoRA", disable=not progress) as bar:
        try:
            history, best = run_epochs(
                config.epochs,
                fit_epoch,
                lambda: _evaluate(gate, data, val_rows, targets, config.batch_size),
                y[val_rows],
                lambda: _adapter_copy(gate.model),
                bar,
            )
        except RuntimeError as exc:  # OOM, kernel failures
            raise GateError(f"LoRA training step failed: {exc}") from exc
    set_peft_model_state_dict(gate.model, best.state)
    gate.model.eval()
    return {
        "split": split,
        "weights": weights,
        "best_epoch": best.epoch,
        "history": history,
        "val_probabilities": best.val_probabilities,
        "val_labels": y[val_rows],
    }


def train_granite_gate(
    data: str | Path,
    base: str | Path,
    out: str | Path,
    *,
    ladder: str | Ladder = "card",
    lora: LoraSettings | None = None,
    config: TrainConfig | None = None,
    probe_size: int = 256,
    class_tokens: list[str] | None = None,
    prompt: str = DEFAULT_PROMPT,
    strict: bool = False,
    device: Any = None,
    dtype: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune a LoRA adapter on ``base`` (Granite-Docling) to answer the class of labeled ``data``;
    write the gate directory, ``metrics.json`` and ``confusion_matrix.png`` to ``out``; return the metrics."""
    lora = lora or LoraSettings()
    config = config or TrainConfig(**LORA_TRAIN_DEFAULTS)
    config.check()
    ladder, loaded = load_training_data(data, ladder, strict=strict)
    torch.manual_seed(config.seed)
    gate = GraniteDoclingGate.from_base(
        base,
        ladder=ladder,
        class_tokens=class_tokens,
        probe_size=probe_size,
        prompt=prompt,
        rank=lora.rank,
        alpha=lora.alpha,
        dropout=lora.dropout,
        target_modules=lora.target_modules,
        device=device,
        dtype=dtype,
    )
    started = time.perf_counter()
    probes = load_probes(gate, loaded.samples, strict=strict, progress=progress)
    load_s = time.perf_counter() - started
    check_two_classes(probes.samples)
    result = _train(gate, probes, config, progress)
    out = gate.save_pretrained(out)
    trainable = sum(p.numel() for p in gate.model.parameters() if p.requires_grad)
    return write_training_report(
        out,
        names=list(gate.config.class_names or []),
        ladder=ladder,
        labels=probes.labels.numpy(),
        split=result["split"],
        best_epoch=result["best_epoch"],
        history=result["history"],
        val_labels=result["val_labels"],
        val_probabilities=result["val_probabilities"],
        config=config,
        weights=result["weights"],
        gate_type=gate.config.gate_type,
        base=str(base),
        lora={**vars(lora), "target_modules": list(lora.target_modules), "trainable_params": trainable},
        probe_size=gate.config.probe_size,
        class_tokens=gate.config.class_tokens,
        prompt=gate.config.prompt,
        dtype=str(gate.dtype).replace("torch.", ""),
        train_config={k: v for k, v in vars(config).items() if k != "head_hidden"},
        data={"source": str(data), **data_report(loaded, probes)},
        timing={"load_s": load_s, "train_s": sum(h["seconds"] for h in result["history"])},
    )
