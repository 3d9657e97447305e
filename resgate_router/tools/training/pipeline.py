"""``train_gate`` and ``evaluate_gate``: labeled data in, a gate directory and honest metrics out."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...ladder import Ladder
from ..datasets import DataError, LoadedSamples, Sample, load_samples
from .features import FeatureSet, extract_features
from .report import classification_metrics, write_confusion_png
from .trainer import SELECTION_METRIC, TrainConfig, train_head

__all__ = ["train_gate", "evaluate_gate", "METRICS_FILE", "CONFUSION_FILE"]

METRICS_FILE = "metrics.json"
CONFUSION_FILE = "confusion_matrix.png"


def check_labels(samples: list[Sample], num_classes: int, what: str) -> None:
    for sample in samples:
        if sample.label is None or sample.label >= num_classes:
            raise DataError(
                f"sample {sample.id!r}: label {sample.label} is not a class of {what} (0..{num_classes - 1})"
            )


def check_two_classes(samples: list[Sample]) -> None:
    if not samples:
        raise DataError("no sample with a readable image")
    counts = Counter(s.label for s in samples)
    if len(counts) < 2:
        label = next(iter(counts), None)
        raise DataError(f"all {len(samples)} usable samples have label {label}: training a gate needs two classes")


def data_report(loaded: LoadedSamples, features: Any) -> dict[str, Any]:
    """``features``: anything with the usable ``samples`` and the ``skipped`` list (a FeatureSet)."""
    return {
        "rows": len(loaded.samples) + len(loaded.missing),
        "used": len(features.samples),
        "missing_images": len(loaded.missing),
        "missing_examples": loaded.missing[:10],
        "unreadable_images": len(features.skipped),
        "unreadable_examples": features.skipped[:10],
    }


def counts_and_split(labels: np.ndarray, split: Any, num_classes: int) -> dict[str, Any]:
    """The ``class_counts`` and ``split`` entries of a training ``metrics.json``."""
    return {
        "class_counts": {
            "all": np.bincount(labels, minlength=num_classes).tolist(),
            "train": np.bincount(labels[split.train], minlength=num_classes).tolist(),
            "val": np.bincount(labels[split.val], minlength=num_classes).tolist(),
        },
        "split": {
            "train": len(split.train),
            "val": len(split.val),
            "stratified": split.stratified,
            "note": split.note,
        },
    }


def load_training_data(data: str | Path, ladder: str | Ladder, *, strict: bool) -> tuple[Ladder, LoadedSamples]:
    """The ladder and the labeled samples, checked: one class per rung, at least two classes."""
    ladder = Ladder.parse(ladder)
    loaded = load_samples(data, strict=strict, require_label=True)
    check_labels(loaded.samples, len(ladder), f"ladder {ladder.spec()!r}")
    check_two_classes(loaded.samples)
    return ladder, loaded


def train_gate(
    data: str | Path,
    backbone: str | Path,
    out: str | Path,
    *,
    profile: str = "single-tile",
    layer: int | str = "middle",
    window: int = 0,
    ladder: str | Ladder = "card",
    config: TrainConfig | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    strict: bool = False,
    device: Any = None,
    dtype: Any = None,
    extract_batch_size: int = 8,
    progress: bool = True,
    ray: Any = None,
) -> dict[str, Any]:
    """Train a gate head on labeled ``data`` over a frozen ``backbone``; write the gate directory,
    ``metrics.json`` and ``confusion_matrix.png`` to ``out``; return the metrics. ``ray``
    (:class:`~resgate_router.tools.ray_engine.RayOptions`): extract the features on a Ray actor pool."""
    from ...gate import SmolVLMGate

    config = config or TrainConfig()
    config.check()
    ladder, loaded = load_training_data(data, ladder, strict=strict)
    gate = SmolVLMGate.from_backbone(
        backbone,
        layer=layer,
        window=window,
        profile=profile,
        ladder=ladder,
        num_classes=len(ladder),
        head_hidden=config.head_hidden,
        device=device,
        dtype=dtype,
    )
    started = time.perf_counter()
    features = extract_features(
        gate,
        loaded.samples,
        cache_dir=cache_dir,
        use_cache=use_cache,
        batch_size=extract_batch_size,
        strict=strict,
        progress=progress,
        ray=ray,
    )
    extract_s = time.perf_counter() - started
    check_two_classes(features.samples)
    result = train_head(features.features, features.labels, len(ladder), config, progress=progress)
    gate.model.head.load_state_dict(result.head.state_dict())
    out = gate.save_pretrained(out)
    return write_training_report(
        out,
        names=list(gate.config.class_names),
        ladder=ladder,
        labels=features.labels.numpy(),
        split=result.split,
        best_epoch=result.best_epoch,
        history=result.history,
        val_labels=result.val_labels,
        val_probabilities=result.val_probabilities,
        config=config,
        weights=result.class_weights,
        backbone=str(backbone),
        backbone_digest=features.setting.get("backbone_digest"),
        profile=gate.profile,
        layer=gate.model.backbone.layer,
        window=gate.model.backbone.window,
        dtype=str(gate.dtype).replace("torch.", ""),
        train_config=vars(config),
        data={"source": str(data), **data_report(loaded, features)},
        cache={"dir": features.cache_dir, "hits": features.hits, "misses": features.extracted},
        timing={"extract_s": extract_s, "train_s": sum(h["seconds"] for h in result.history)},
    )


def write_training_report(
    out: Path,
    *,
    names: list[str],
    ladder: Ladder,
    labels: np.ndarray,
    split: Any,
    best_epoch: int,
    history: list[dict[str, Any]],
    val_labels: np.ndarray,
    val_probabilities: np.ndarray,
    config: TrainConfig,
    weights: list[float],
    **extra: Any,
) -> dict[str, Any]:
    """``metrics.json`` and ``confusion_matrix.png`` of a training run (either trainer): the best
    epoch's validation metrics, the history, class counts and split, then the trainer's ``extra``."""
    validation = classification_metrics(val_labels, val_probabilities, names)
    metrics = {
        "validation": validation,
        "best_epoch": best_epoch,
        "selection_metric": SELECTION_METRIC,
        "history": history,
        "class_names": names,
        "ladder": ladder.to_list(),
        **counts_and_split(labels, split, len(ladder)),
        "class_weights": {"mode": config.class_weights, "values": weights},
        **extra,
    }
    (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    write_confusion_png(validation, names, out / CONFUSION_FILE, title=f"validation, best epoch {best_epoch}")
    return metrics


def _gate_outputs(
    gate: Any, samples: list[Sample], features: FeatureSet | None, batch_size: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """(probabilities, the gate's decisions; None: the most probable class)."""
    if features is not None:  # MLP gate: its head on the (cached) backbone features
        with torch.inference_mode():
            head = gate.model.head
            param = next(head.parameters())
            logits = head(features.features.to(device=param.device, dtype=param.dtype)).float().cpu()
            return gate.probabilities(logits).numpy(), None
    decisions = []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        decisions.extend(gate.predict_batch([s.image for s in chunk], [s.question for s in chunk]))
    # what the router acts on: a docs gate's decision is its threshold, not the most probable class
    return np.array([d.probabilities for d in decisions]), np.array([d.label for d in decisions])


def evaluate_gate(
    gate: Any,
    data: str | Path,
    *,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    strict: bool = False,
    device: Any = None,
    dtype: Any = None,
    batch_size: int = 8,
    progress: bool = True,
) -> dict[str, Any]:
    """Metrics of a gate (a directory, Hub id or gate object) on labeled ``data``. An MLP gate reads
    backbone features through the same cache as ``train_gate``; other gates run ``predict_batch``."""
    from ...gate.loading import load_gate
    from ...gate.smolvlm import SmolVLMGate

    source = str(gate)
    if isinstance(gate, (str, Path)):
        gate = load_gate(gate, device=device, dtype=dtype)
    loaded = load_samples(data, strict=strict, require_label=True)
    names = list(gate.class_names)
    check_labels(loaded.samples, len(names), "the gate")
    features = None
    samples = loaded.samples
    if isinstance(gate, SmolVLMGate):
        features = extract_features(
            gate,
            samples,
            cache_dir=cache_dir,
            use_cache=use_cache,
            batch_size=batch_size,
            strict=strict,
            progress=progress,
        )
        samples = features.samples
    if not samples:
        raise DataError(f"{data}: no sample with a readable image")
    probabilities, predicted = _gate_outputs(gate, samples, features, batch_size)
    metrics = classification_metrics(np.array([s.label for s in samples]), probabilities, names, predicted)
    report: dict[str, Any] = {"gate": source, "data": {"source": str(data)}, "class_names": names, **metrics}
    report["ladder"] = gate.ladder.to_list()
    if features is not None:
        report["data"].update(data_report(loaded, features))
        report["cache"] = {"dir": features.cache_dir, "hits": features.hits, "misses": features.extracted}
        report["profile"] = gate.profile
    return report
