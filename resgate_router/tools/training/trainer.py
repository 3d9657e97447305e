"""Training the CARES head on cached features: stratified split, AdamW, class-weighted cross-entropy,
best epoch kept by validation macro recall (balanced accuracy; ties -> lower validation loss, then
the earlier epoch).

Macro recall rather than accuracy because resolution labels are imbalanced (most document questions
need little resolution): a head that always answers the majority class scores high accuracy and
saves nothing or loses answers; macro recall gives it 1 / C.
Deterministic for a seed: the head is trained on the CPU from a seeded init and a seeded shuffle.
It runs on one intra-op thread: its matrices are so small that more threads cost more in
synchronisation than they save (measured here, 5,000 x 576 features, batch 64: 0.35 s per epoch on
one thread vs 2.4 to 10 s on two, on this project's shared 2-core machine).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ...gate.model import make_head

__all__ = [
    "TrainConfig",
    "Split",
    "TrainResult",
    "BestEpoch",
    "split_indices",
    "class_weights",
    "class_logits",
    "run_epochs",
    "train_head",
]

logger = logging.getLogger(__name__)

CLASS_WEIGHTS = ("balanced", "none")
SELECTION_METRIC = "macro_recall"


@dataclass
class TrainConfig:
    epochs: int = 6
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.01  # AdamW's default
    label_smoothing: float = 0.0
    class_weights: str = "balanced"
    seed: int = 42
    val_frac: float = 0.1
    head_hidden: int = 256

    def check(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("epochs and batch size must be at least 1")
        if not 0.0 < self.val_frac < 1.0:
            raise ConfigError(f"val_frac must be in (0, 1), got {self.val_frac}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if self.class_weights not in CLASS_WEIGHTS:
            raise ConfigError(f"class_weights must be one of {list(CLASS_WEIGHTS)}, got {self.class_weights!r}")


@dataclass
class Split:
    train: np.ndarray  # row indices, sorted
    val: np.ndarray
    stratified: bool
    note: str | None = None  # why the split is not stratified


@dataclass
class TrainResult:
    head: nn.Sequential  # weights of the best epoch
    best_epoch: int
    history: list[dict[str, Any]]
    split: Split
    class_weights: list[float]
    val_probabilities: np.ndarray  # (n_val, C) of the best epoch
    val_labels: np.ndarray


def split_indices(labels: np.ndarray, val_frac: float, seed: int) -> Split:
    """Stratified train/val split (sklearn, seeded); a random split when some class is too small."""
    from sklearn.model_selection import train_test_split

    n = len(labels)
    n_val = math.ceil(val_frac * n)  # sklearn's rounding for a float test_size
    if n < 2 or n_val >= n:
        raise ConfigError(f"cannot split {n} samples with val_frac {val_frac}: need one sample on each side")
    counts = np.bincount(labels)
    present = int((counts > 0).sum())
    note = None
    if counts[counts > 0].min() < 2:
        rare = [int(c) for c in np.flatnonzero(counts == 1)]
        note = f"class(es) {rare} have a single sample"
    elif n_val < present or n - n_val < present:
        note = f"{n_val} validation / {n - n_val} training samples cannot hold all {present} classes"
    rows = np.arange(n)
    if note:
        logger.warning("stratified split impossible (%s): splitting at random", note)
        train, val = train_test_split(rows, test_size=val_frac, random_state=seed)
    else:
        train, val = train_test_split(rows, test_size=val_frac, random_state=seed, stratify=labels)
    return Split(np.sort(train), np.sort(val), note is None, note)


def class_weights(labels: np.ndarray, num_classes: int, mode: str) -> list[float]:
    """``balanced``: sklearn's n / (k * count) over the classes present; absent classes get 1."""
    weights = np.ones(num_classes)
    if mode == "balanced":
        from sklearn.utils.class_weight import compute_class_weight

        present = np.unique(labels)
        weights[present] = compute_class_weight("balanced", classes=present, y=labels)
    return [float(w) for w in weights]


def class_logits(outputs: torch.Tensor) -> torch.Tensor:
    """Per-class logits; a binary head's single logit z becomes [0, z] (softmax = [1 - sigmoid, sigmoid],
    the gate's binary probabilities), so one cross-entropy serves both head shapes."""
    return torch.cat([torch.zeros_like(outputs), outputs], dim=1) if outputs.shape[1] == 1 else outputs


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _fit_epoch(
    head: nn.Module,
    optimizer: torch.optim.Optimizer,
    features: torch.Tensor,
    labels: torch.Tensor,
    order: torch.Tensor,
    weights: torch.Tensor,
    config: TrainConfig,
) -> float:
    """One pass over ``order`` (shuffled training rows); returns the mean training loss."""
    head.train()
    total = 0.0
    for start in range(0, len(order), config.batch_size):
        rows = order[start : start + config.batch_size]
        logits = class_logits(head(features[rows]))
        loss = F.cross_entropy(logits, labels[rows], weight=weights, label_smoothing=config.label_smoothing)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(rows)
    return total / len(order)


@torch.no_grad()
def _evaluate(head: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> tuple[float, np.ndarray]:
    head.eval()
    logits = class_logits(head(features))
    return float(F.cross_entropy(logits, labels)), torch.softmax(logits, dim=-1).numpy()


def train_head(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    config: TrainConfig,
    *,
    progress: bool = True,
) -> TrainResult:
    """Train a fresh head on ``features`` (n, d) with integer ``labels`` (n,) in ``[0, num_classes)``."""
    config.check()
    with _one_thread():
        return _train(features, labels, num_classes, config, progress)


@dataclass
class BestEpoch:
    epoch: int
    state: Any  # what ``snapshot`` returned after that epoch
    val_probabilities: np.ndarray


def run_epochs(
    epochs: int,
    fit_epoch: Callable[[], float],
    evaluate: Callable[[], tuple[float, np.ndarray]],
    val_labels: np.ndarray,
    snapshot: Callable[[], Any],
    bar: Any,
) -> tuple[list[dict[str, Any]], BestEpoch]:
    """The loop both trainers share: ``fit_epoch()`` -> train loss, ``evaluate()`` -> (val loss, val
    probabilities), per epoch; the history, and the best epoch by validation macro recall (ties: lower
    validation loss, then the earlier epoch) with its ``snapshot()``."""
    from sklearn.metrics import recall_score

    history: list[dict[str, Any]] = []
    best: tuple[tuple[float, float], BestEpoch] | None = None
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        train_loss = fit_epoch()
        val_loss, probs = evaluate()
        predicted = probs.argmax(axis=1)
        recall = float(recall_score(val_labels, predicted, average="macro", zero_division=0))
        history.append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_accuracy": float((predicted == val_labels).mean()),
                "val_macro_recall": recall,
                "seconds": time.perf_counter() - started,
            }
        )
        bar.set_postfix(loss=f"{train_loss:.4f}", val_recall=f"{recall:.3f}")
        if best is None or (recall, -val_loss) > best[0]:
            best = ((recall, -val_loss), BestEpoch(epoch, snapshot(), probs))
    if best is None:
        raise ConfigError("epochs must be at least 1")
    return history, best[1]


def _train(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int, config: TrainConfig, progress: bool
) -> TrainResult:
    from tqdm.auto import tqdm

    y = labels.numpy()
    split = split_indices(y, config.val_frac, config.seed)
    weights = class_weights(y[split.train], num_classes, config.class_weights)
    torch.manual_seed(config.seed)
    head = make_head(features.shape[1], config.head_hidden, num_classes)
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    train_idx, val_idx = torch.from_numpy(split.train), torch.from_numpy(split.val)
    weight_t = torch.tensor(weights, dtype=torch.float32)
    x_val, y_val = features[val_idx], labels[val_idx]

    def fit_epoch() -> float:
        order = train_idx[torch.randperm(len(train_idx), generator=generator)]
        loss = _fit_epoch(head, optimizer, features, labels, order, weight_t, config)
        bar.update(1)
        return loss

    with tqdm(total=config.epochs, unit="epoch", desc="training head", disable=not progress) as bar:
        history, best = run_epochs(
            config.epochs,
            fit_epoch,
            lambda: _evaluate(head, x_val, y_val),
            y_val.numpy(),
            lambda: copy.deepcopy(head.state_dict()),
            bar,
        )
    head.load_state_dict(best.state)
    head.eval()
    return TrainResult(
        head=head,
        best_epoch=best.epoch,
        history=history,
        split=split,
        class_weights=weights,
        val_probabilities=best.val_probabilities,
        val_labels=y_val.numpy(),
    )
