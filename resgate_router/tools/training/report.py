"""Classification metrics of a gate (sklearn), the confusion-matrix PNG and the printed table.

Macro precision and recall average over the classes that occur in the labels or the predictions
(sklearn's default). ROC-AUC is one-vs-rest: per class, sklearn's ``roc_auc_score`` of "is class k"
against p_k, for each class that has both positive and negative samples; the macro value averages
those (equal to ``roc_auc_score(..., multi_class="ovr")`` when every class is present). Classes left
out are listed, and the value is ``null`` when none qualifies.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["classification_metrics", "write_confusion_png", "format_metrics"]


def classification_metrics(
    labels: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str], predicted: np.ndarray | None = None
) -> dict:
    """Accuracy, macro precision/recall, ROC-AUC (OvR), confusion matrix and per-class figures.
    ``predicted``: the gate's own decisions when they are not the most probable class (a threshold)."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        precision_recall_fscore_support,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities)
    num_classes = len(class_names)
    predicted = probabilities.argmax(axis=1) if predicted is None else np.asarray(predicted)
    classes = list(range(num_classes))
    auc = {
        k: float(roc_auc_score(labels == k, probabilities[:, k]))
        for k in classes
        if 0 < int((labels == k).sum()) < len(labels)
    }
    precision, recall, f1, support = precision_recall_fscore_support(labels, predicted, labels=classes, zero_division=0)
    counts = np.bincount(labels, minlength=num_classes)
    return {
        "samples": len(labels),
        "accuracy": float(accuracy_score(labels, predicted)),
        "macro_precision": float(precision_score(labels, predicted, average="macro", zero_division=0)),
        "macro_recall": float(recall_score(labels, predicted, average="macro", zero_division=0)),
        "roc_auc_ovr": float(np.mean(list(auc.values()))) if auc else None,
        "roc_auc_classes": sorted(auc),
        "majority_class_accuracy": float(counts.max() / len(labels)),
        "label_counts": counts.tolist(),
        "confusion_matrix": confusion_matrix(labels, predicted, labels=classes).tolist(),
        "per_class": [
            {
                "class": k,
                "name": class_names[k],
                "precision": float(precision[k]),
                "recall": float(recall[k]),
                "f1": float(f1[k]),
                "support": int(support[k]),
                "roc_auc": auc.get(k),
            }
            for k in classes
        ],
    }


def write_confusion_png(metrics: dict, class_names: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Draw the confusion matrix (counts, row-normalised shading) with matplotlib's Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    matrix = np.asarray(metrics["confusion_matrix"])
    size = 3.2 + 0.6 * len(class_names)
    figure = Figure(figsize=(size, size))
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for (row, col), count in np.ndenumerate(matrix):
        axes.text(col, row, str(count), ha="center", va="center", color="white" if shares[row, col] > 0.5 else "black")
    ticks = range(len(class_names))
    axes.set_xticks(ticks, labels=list(class_names))
    axes.set_yticks(ticks, labels=list(class_names))
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    summary = f"accuracy {metrics['accuracy']:.3f}, macro recall {metrics['macro_recall']:.3f}, n={metrics['samples']}"
    axes.set_title(f"{title}\n{summary}" if title else summary, fontsize=9)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(str(path), dpi=110)
    return path


def format_metrics(metrics: dict, class_names: Sequence[str]) -> str:
    """A plain-text table of :func:`classification_metrics`."""
    auc = metrics["roc_auc_ovr"]
    lines = [
        f"samples               {metrics['samples']}",
        f"accuracy              {metrics['accuracy']:.4f}  (majority class: {metrics['majority_class_accuracy']:.4f})",
        f"macro precision       {metrics['macro_precision']:.4f}",
        f"macro recall          {metrics['macro_recall']:.4f}",
        "ROC-AUC (one-vs-rest) "
        + (f"{auc:.4f}  (classes {metrics['roc_auc_classes']})" if auc is not None else "n/a (one class only)"),
        "",
        f"{'class':<12}{'precision':>10}{'recall':>10}{'support':>9}",
    ]
    for row in metrics["per_class"]:
        lines.append(f"{row['name']:<12}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['support']:>9}")
    width = max(8, *(len(n) + 2 for n in class_names))
    lines += [
        "",
        "confusion matrix (rows: true, columns: predicted)",
        " " * 12 + "".join(f"{n:>{width}}" for n in class_names),
    ]
    for name, row in zip(class_names, metrics["confusion_matrix"]):
        lines.append(f"{name:<12}" + "".join(f"{c:>{width}}" for c in row))
    return "\n".join(lines)
