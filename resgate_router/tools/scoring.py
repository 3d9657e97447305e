"""Answer scoring with lmms-eval semantics (the scores a downstream's answers are labeled and
benchmarked with). Each scorer takes one prediction and the list of acceptable answers and returns a
float in [0, 1] (the best over the answers).

* ``anls``: DocVQA/InfographicVQA ANLS. Whitespace-collapsed lowercase strings; the edit distance is
  normalised by the longer of the *raw* answer and prediction (as lmms-eval does); scores below the
  threshold (0.5) count 0.
* ``relaxed``: ChartQA relaxed accuracy: numbers (``%`` read as /100) within 5% relative error of a
  non-zero target, else case-insensitive exact match.
* ``exact``: whitespace-collapsed, case-insensitive exact match.
* ``vqa``: TextVQA/VQAv2 accuracy: EvalAI answer normalisation (punctuation, number words, articles,
  contractions), then the mean over the leave-one-out subsets of the ``n`` human answers of
  ``min(1, matches / 3)``. With a single reference answer (no subsets to leave one out of) it is the
  normalised exact match; lmms-eval would score that 0.
* ``contains``: the normalised answer occurs in the normalised prediction (for readers that return a
  whole page, e.g. OCR; RESEARCH.md 7).
* ``anls-lines``: the best ANLS of any line of the prediction (a second view of a page of OCR text).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from rapidfuzz.distance import Levenshtein

from ..errors import ConfigError

__all__ = [
    "anls",
    "relaxed_accuracy",
    "exact_match",
    "vqa_accuracy",
    "normalize_vqa_answer",
    "contains",
    "anls_lines",
    "SCORERS",
    "score",
]


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


# EvalAI's answer processor (mmf pythia/tasks/processors.py, used by lmms-eval). The contraction map is
# generated: every spelling of a contraction with some of its apostrophes dropped maps to the full form.
_CONTRACTED = (
    "ain't aren't can't could've couldn't couldn't've didn't doesn't don't hadn't hadn't've hasn't haven't "
    "he'd he'd've he's how'd how'll how's i'd've i'm i've isn't it'd it'd've it'll ma'am mightn't "
    "mightn't've might've mustn't must've needn't not've o'clock oughtn't shan't she'd've should've "
    "shouldn't shouldn't've somebody'd've somebody'll somebody's someone'd someone'd've someone'll "
    "someone's something'd something'd've something'll that's there'd there'd've there're there's they'd "
    "they'd've they'll they're they've 'twas wasn't we'd've we've weren't what'll what're what's what've "
    "when's where'd where's where've who'd who'd've who'll who's who've why'll why're why's won't would've "
    "wouldn't wouldn't've y'all y'all'll y'all'd've you'd you'd've you'll you're you've"
).split()


def _spellings(word: str) -> set[str]:
    parts = word.split("'")
    spellings = {parts[0]}
    for part in parts[1:]:
        spellings = {s + "'" + part for s in spellings} | {s + part for s in spellings}
    return spellings - {word}


_CONTRACTIONS = {variant: word for word in _CONTRACTED for variant in _spellings(word)}
_NUMBER_WORDS = dict(
    zip("none zero one two three four five six seven eight nine ten".split(), "0 0 1 2 3 4 5 6 7 8 9 10".split())
)
_ARTICLES = {"a", "an", "the"}
_PUNCTUATION = [
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
]
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(?<=\d)(\,)+(?=\d)")


def normalize_vqa_answer(text: str) -> str:
    """EvalAI's answer normalisation, step for step."""
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    out = text
    for mark in _PUNCTUATION:
        if mark + " " in text or " " + mark in text or _COMMA_STRIP.search(text) is not None:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    out = _PERIOD_STRIP.sub("", out)
    words = [_NUMBER_WORDS.get(w, w) for w in out.lower().split()]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES)


def vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    if not answers:
        return 0.0
    predicted = normalize_vqa_answer(prediction)
    normalized = [normalize_vqa_answer(a) for a in answers]
    if len(normalized) == 1:
        return float(normalized[0] == predicted)
    subsets = []
    for i in range(len(normalized)):
        matches = sum(1 for j, answer in enumerate(normalized) if j != i and answer == predicted)
        subsets.append(min(1.0, matches / 3))
    return sum(subsets) / len(subsets)


_NON_WORD = re.compile(r"[^0-9a-z]+")


def contains_key(text: str) -> str:
    """What :func:`contains` compares: lowercase alphanumerics only."""
    return _NON_WORD.sub("", text.lower())


def contains(prediction: str, answers: Sequence[str]) -> float:
    """Alphanumerics only, so punctuation and spacing differences of OCR output do not count."""
    text = contains_key(prediction)
    return float(any((key := contains_key(a)) and key in text for a in answers))


def anls_lines(prediction: str, answers: Sequence[str]) -> float:
    return max((anls(line, answers) for line in prediction.splitlines() if line.strip()), default=0.0)


SCORERS: dict[str, Callable[[str, Sequence[str]], float]] = {
    "anls": anls,
    "relaxed": relaxed_accuracy,
    "exact": exact_match,
    "vqa": vqa_accuracy,
    "contains": contains,
    "anls-lines": anls_lines,
}


def score(metric: str, prediction: str, answers: Sequence[str]) -> float:
    if metric not in SCORERS:
        raise ConfigError(f"unknown metric {metric!r}: available are {sorted(SCORERS)}")
    return SCORERS[metric](prediction, list(answers))
