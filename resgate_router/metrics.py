"""Answer scoring with lmms-eval semantics (the scores a downstream's answers are labeled and
benchmarked with). Each scorer takes one prediction and the list of acceptable answers and returns a
float in [0, 1] (the best over the answers).

* ``anls``: DocVQA/InfographicVQA ANLS. Whitespace-collapsed lowercase strings; the edit distance is
  normalised by the longer of the *raw* answer and prediction (as lmms-eval does); scores below the
  threshold (0.5) count 0.
* ``relaxed``: ChartQA relaxed accuracy: numbers (``%`` read as /100) within 5% relative error of a
  non-zero target, else case-insensitive exact match.
* ``exact``: whitespace-collapsed, case-insensitive exact match.
* ``contains``: the normalised answer occurs in the normalised prediction (for readers that return a
  whole page, e.g. OCR; RESEARCH.md 7).

TextVQA's VQA accuracy (EvalAI answer normalisation, 10-way leave-one-out) is not here yet.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from rapidfuzz.distance import Levenshtein

from .errors import ConfigError

__all__ = ["anls", "relaxed_accuracy", "exact_match", "contains", "SCORERS", "score"]


def _collapse(text: str) -> str:
    return " ".join(text.strip().lower().split())


def anls(prediction: str, answers: Sequence[str], threshold: float = 0.5) -> float:
    if not answers:
        return 0.0
    predicted = _collapse(prediction)
    distances = []
    for answer in answers:
        length = max(len(answer.upper()), len(prediction.upper()))
        distances.append(0.0 if length == 0 else Levenshtein.distance(_collapse(answer), predicted) / length)
    value = 1.0 - min(distances)
    return value if value >= threshold else 0.0


def _to_float(text: str) -> float | None:
    try:
        return float(text.rstrip("%")) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        return None


def relaxed_accuracy(prediction: str, answers: Sequence[str], tolerance: float = 0.05) -> float:
    def correct(target: str) -> bool:
        predicted, expected = _to_float(prediction.strip()), _to_float(target.strip())
        if predicted is not None and expected:
            return abs(predicted - expected) / abs(expected) <= tolerance
        return prediction.strip().lower() == target.strip().lower()

    return float(any(correct(answer) for answer in answers))


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    return float(_collapse(prediction) in {_collapse(answer) for answer in answers})


_NON_WORD = re.compile(r"[^0-9a-z]+")


def contains(prediction: str, answers: Sequence[str]) -> float:
    """Alphanumerics only, so punctuation and spacing differences of OCR output do not count."""
    text = _NON_WORD.sub("", prediction.lower())
    return float(any((key := _NON_WORD.sub("", a.lower())) and key in text for a in answers))


SCORERS: dict[str, Callable[[str, Sequence[str]], float]] = {
    "anls": anls,
    "relaxed": relaxed_accuracy,
    "exact": exact_match,
    "contains": contains,
}


def score(metric: str, prediction: str, answers: Sequence[str]) -> float:
    if metric not in SCORERS:
        raise ConfigError(f"unknown metric {metric!r}: available are {sorted(SCORERS)}")
    return SCORERS[metric](prediction, list(answers))
