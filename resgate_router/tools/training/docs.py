"""``train_docs_gate``: ``resgate label`` output in, a :class:`~resgate_router.gate.docs.DocsGate` out.

1. Features: the page analysis once per page, the question features per sample (no cache needed:
   a page costs tens of milliseconds).
2. Targets: for each rung below the top, "the downstream answers at this rung or below" (the CARES
   label is at most that rung). Samples no rung answers teach nothing about resolution and are left
   out of the fit (they still count in every accuracy and cost figure).
3. Selection, all on the training split, grouped by page so no page is in two folds: the L2
   strength by out-of-fold log loss, then the threshold: the cheapest out-of-fold operating point
   whose accuracy is at most ``max_drop`` below the top rung's.
4. The head fit on the training split is reported on the validation split (pages it never saw);
   the head saved is refit on all the data with the selected settings.

Scores per rung come from the labels' ``runs`` (the score of each resolution); a file with labels
only is read as "answers from the label's rung up". Costs are the policy's visual tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...gate.decision import upgrade_within
from ...gate.docs import DocsFeatures, DocsGate, DocsHead, first_reaching
from ...images import load_image
from ...ladder import Ladder
from ...policies import FamilyPolicy, get_policy
from ..bench.gates import oracle_choices
from ..datasets import DataError, Sample, load_samples
from ..sweep import rung_key

__all__ = ["train_docs_gate", "DocsData"]

C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
THRESHOLDS = np.round(np.arange(0.05, 0.996, 0.01), 2)
FOLDS = 5


@dataclass
class DocsData:
    """One row per sample: features, per-rung score and cost, the label and the page (group)."""

    samples: list[Sample]
    vectors: np.ndarray
    scores: np.ndarray
    costs: np.ndarray
    labels: np.ndarray
    answerable: np.ndarray
    groups: np.ndarray


def train_docs_gate(
    data: str | Path,
    out: str | Path,
    *,
    ladder: str | Ladder | None = None,
    policy: str | FamilyPolicy = "idefics3",
    tau: float = 0.85,
    max_drop: float = 0.005,
    val_frac: float = 0.2,
    seed: int = 42,
    question_buckets: int = 64,
    strict: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train, report on a held-out page split, refit on everything, save to ``out`` (gate files and
    ``metrics.json``); return the metrics."""
    loaded = load_samples(data, strict=strict, require_label=True)
    ladder = _ladder_of(loaded.samples, ladder)
    policy = get_policy(policy) if isinstance(policy, str) else policy
    features = DocsFeatures(tuple(ladder.rungs), question_buckets=question_buckets)
    rows = build_rows(loaded.samples, features, ladder, policy, tau=tau, progress=progress)
    train, val = _page_split(rows.groups, val_frac, seed)
    strength, curve = select_strength(rows, train)
    threshold, operating = select_threshold(rows, train, strength, max_drop)
    held_out = evaluate(fit_head(rows, train, strength, threshold), rows, val, ladder) if val.size else None
    head = fit_head(rows, np.arange(len(rows.labels)), strength, threshold)
    head.extra = {"C": strength, "tau": tau, "max_drop": max_drop, "policy": policy.name, "seed": seed}
    out = DocsGate(features, head).save_pretrained(out)
    metrics = {
        "gate": "docs",
        "data": {"rows": len(loaded.samples) + len(loaded.missing), "used": len(rows.samples)},
        "ladder": ladder.spec(),
        "class_counts": np.bincount(rows.labels, minlength=len(ladder)).tolist(),
        "unanswerable": int((~rows.answerable).sum()),
        "split": {"train": int(train.size), "val": int(val.size), "pages_val": int(np.unique(rows.groups[val]).size)},
        "C": strength,
        "log_loss_by_C": curve,
        "threshold": threshold,
        "train_out_of_fold": operating,
        "validation": held_out,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return metrics


def _ladder_of(samples: list[Sample], ladder: str | Ladder | None) -> Ladder:
    """The labels' ladder (their ``runs`` keys), checked against ``ladder`` when given."""
    keys = next((list(s.meta["runs"]) for s in samples if isinstance(s.meta.get("runs"), dict)), None)
    found = Ladder.parse(",".join(keys)) if keys else None
    chosen = Ladder.parse(ladder) if ladder is not None else found
    if chosen is None:
        raise DataError("labels without per-resolution runs: pass the ladder they were labeled on")
    if found is not None and found.rungs != chosen.rungs:
        raise DataError(f"the labels were made on the ladder {found.spec()}, not {chosen.spec()}")
    return chosen


def build_rows(
    samples: list[Sample],
    features: DocsFeatures,
    ladder: Ladder,
    policy: FamilyPolicy,
    *,
    tau: float,
    progress: bool = True,
) -> DocsData:
    from tqdm.auto import tqdm

    pages: dict[str, tuple[np.ndarray, tuple[int, int]]] = {}
    kept, vectors, scores, costs, groups = [], [], [], [], []
    for sample in tqdm(samples, desc="features", unit="sample", disable=not progress, dynamic_ncols=True):
        key = str(sample.image)
        if key not in pages:
            try:
                image = load_image(sample.image)
            except Exception:  # noqa: BLE001 - an unreadable page is skipped and counted, as in mlp training
                continue
            pages[key] = (features.page(image), image.size)
        page, size = pages[key]
        if sample.label is None or not 0 <= sample.label < len(ladder):
            raise DataError(f"sample {sample.id!r}: label {sample.label} is not a class of ladder {ladder.spec()}")
        kept.append(sample)
        vectors.append(features.vector(page, sample.question))
        scores.append(_scores(sample, ladder))
        costs.append([policy.visual_tokens(*size, rung) for rung in ladder.rungs])
        groups.append(key)
    if not kept:
        raise DataError("no sample with a readable image")
    score_array = np.asarray(scores, dtype=np.float64)
    labels = np.asarray([s.label for s in kept])
    answerable = score_array.max(axis=1) >= tau
    if len(set(labels[answerable].tolist())) < 2:
        raise DataError("training a docs gate needs answerable samples of at least two classes")
    return DocsData(kept, np.stack(vectors), score_array, np.asarray(costs), labels, answerable, np.asarray(groups))


def _scores(sample: Sample, ladder: Ladder) -> list[float]:
    runs = sample.meta.get("runs")
    if isinstance(runs, dict):
        try:
            return [float(runs[rung_key(r)]["score"]) for r in ladder.rungs]
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"sample {sample.id!r}: runs without a score for every rung ({exc})") from exc
    return [1.0 if k >= int(sample.label or 0) else 0.0 for k in range(len(ladder))]


def _page_split(groups: np.ndarray, val_frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation row indices, whole pages on each side."""
    indices = np.arange(len(groups))
    if val_frac <= 0:
        return indices, indices[:0]
    from sklearn.model_selection import GroupShuffleSplit

    splitter = GroupShuffleSplit(n_splits=1, test_size=val_frac, random_state=seed)
    train, val = next(splitter.split(indices, groups=groups))
    return train, val


def fit_head(rows: DocsData, index: np.ndarray, strength: float, threshold: float) -> DocsHead:
    """One logistic model per rung below the top, on the answerable rows of ``index``."""
    from sklearn.linear_model import LogisticRegression

    fit = index[rows.answerable[index]]
    x = rows.vectors[fit]
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    coef, intercept = [], []
    for rung in range(rows.scores.shape[1] - 1):
        y = rows.labels[fit] <= rung
        if y.all() or not y.any():  # one outcome only: a constant model
            coef.append([0.0] * z.shape[1])
            intercept.append(12.0 if y.all() else -12.0)
            continue
        model = LogisticRegression(C=strength, max_iter=5000).fit(z, y)
        coef.append(model.coef_[0].tolist())
        intercept.append(float(model.intercept_[0]))
    return DocsHead(mean.tolist(), scale.tolist(), coef, intercept, threshold)


def _folds(rows: DocsData, index: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import GroupKFold

    splits = GroupKFold(n_splits=min(FOLDS, np.unique(rows.groups[index]).size)).split(index, groups=rows.groups[index])
    return [(index[a], index[b]) for a, b in splits]


def out_of_fold(rows: DocsData, index: np.ndarray, strength: float) -> np.ndarray:
    """P(answered) per rung for each row of ``index``, each from a head that never saw its page."""
    answers = np.zeros((len(rows.labels), rows.scores.shape[1]))
    for fit, held in _folds(rows, index):
        answers[held] = fit_head(rows, fit, strength, 0.5).answers(rows.vectors[held])
    return answers[index]


def select_strength(rows: DocsData, index: np.ndarray) -> tuple[float, dict[str, float]]:
    """The L2 strength ``C`` of least out-of-fold log loss over the rung targets (answerable rows)."""
    curve = {}
    usable = index[rows.answerable[index]]
    targets = rows.labels[usable][:, None] <= np.arange(rows.scores.shape[1] - 1)[None, :]
    for strength in C_GRID:
        p = np.clip(out_of_fold(rows, usable, strength)[:, :-1], 1e-6, 1 - 1e-6)
        curve[str(strength)] = round(float(-np.mean(targets * np.log(p) + (~targets) * np.log(1 - p))), 5)
    best = min(C_GRID, key=lambda c: (curve[str(c)], c))
    return best, curve


def decide(threshold: float, answers: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """The gate's classes: threshold, then the largest class of the same cost (as with a policy)."""
    return np.array([upgrade_within(int(k), row) for k, row in zip(first_reaching(answers, threshold), costs)])


def select_threshold(
    rows: DocsData, index: np.ndarray, strength: float, max_drop: float
) -> tuple[float, dict[str, Any]]:
    """The threshold of fewest out-of-fold tokens within ``max_drop`` of the top rung's accuracy."""
    answers = out_of_fold(rows, index, strength)
    scores, costs = rows.scores[index], rows.costs[index]
    floor = scores[:, -1].mean() - max_drop
    best: tuple[float, float, float] | None = None
    for threshold in THRESHOLDS:
        chosen = decide(float(threshold), answers, costs)
        accuracy = float(scores[np.arange(len(chosen)), chosen].mean())
        tokens = float(costs[np.arange(len(chosen)), chosen].mean())
        if accuracy >= floor and (best is None or tokens < best[1]):
            best = (float(threshold), tokens, accuracy)
    threshold, tokens, accuracy = best if best is not None else (1.0, float(costs[:, -1].mean()), 0.0)
    return threshold, {
        "accuracy": round(accuracy, 4),
        "visual_tokens": round(tokens, 1),
        "top_rung_accuracy": round(float(scores[:, -1].mean()), 4),
        "top_rung_tokens": round(float(costs[:, -1].mean()), 1),
    }


def evaluate(head: DocsHead, rows: DocsData, index: np.ndarray, ladder: Ladder) -> dict[str, Any]:
    """Accuracy and tokens of ``head`` on rows ``index``, beside the top rung and the oracle."""
    scores, costs = rows.scores[index], rows.costs[index]
    chosen = decide(head.threshold, head.answers(rows.vectors[index]), costs)
    picked = np.arange(len(chosen)), chosen
    oracle = np.array(oracle_choices(ladder, scores.tolist(), costs.tolist()))
    return {
        "items": int(index.size),
        "accuracy": round(float(scores[picked].mean()), 4),
        "visual_tokens": round(float(costs[picked].mean()), 1),
        "top_rung_accuracy": round(float(scores[:, -1].mean()), 4),
        "top_rung_tokens": round(float(costs[:, -1].mean()), 1),
        "oracle_accuracy": round(float(scores[np.arange(len(oracle)), oracle].mean()), 4),
        "oracle_tokens": round(float(costs[np.arange(len(oracle)), oracle].mean()), 1),
        "class_mix": np.bincount(chosen, minlength=costs.shape[1]).tolist(),
    }
