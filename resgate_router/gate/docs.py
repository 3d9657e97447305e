"""``DocsGate``: a learned, question-aware gate that needs no torch, no OCR and no download.

The CARES recipe with another backbone: frozen features, a small trained head.

* Page features: the text-band analysis of :mod:`.legibility` (Pillow + numpy), summarised as the
  band-height distribution, the share of bands that each rung keeps 4, 5 ... 12 px tall, the page's
  size and whether it is a colour photograph or a grey scan.
* Question features: the question's words hashed into ``question_buckets`` bins (a stable hash, so
  a question means the same bins on every machine); words inside quotes (a form's field label) get
  bins of their own.
* Head: one logistic model per rung but the top one, each the probability that the downstream still
  answers at that rung. The gate picks the cheapest rung whose probability reaches ``threshold``
  (chosen at training time for the accuracy it keeps), then, with a policy, the largest rung of the
  same token cost.

``resgate train --gate docs`` trains one from ``resgate label`` output
(:mod:`resgate_router.tools.training.docs`); ``load_gate("builtin:docs")`` loads the one shipped in
the package (its model card is ``builtin/docs/README.md``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ConfigError, GateLoadError, InputError
from ..images import ImageInput, load_image
from ..ladder import Ladder
from ..policies import FamilyPolicy, get_policy
from .decision import GateDecision, upgrade_at_equal_cost
from .legibility import text_bands
from .protocol import GateBasics

__all__ = ["DocsGate", "DocsFeatures", "DocsHead", "GATE_TYPE"]

GATE_TYPE = "docs"
CONFIG_FILE, HEAD_FILE = "config.json", "head.json"
_PERCENTILES = (5, 10, 20, 35, 50, 75, 90)
_WORD = re.compile(r"[a-z0-9]+")
_QUOTED = re.compile(r"[\"\u201c\u201d']([^\"\u201c\u201d']+)[\"\u201c\u201d']")


@dataclass(frozen=True)
class DocsFeatures:
    """The frozen feature extractor: its settings are saved with the head, so training and
    inference compute the same vector."""

    rungs: tuple[int | str, ...]  # the ladder the head was trained for
    legible_px: tuple[float, ...] = (4, 5, 6, 7, 8, 9, 10, 12)
    question_buckets: int = 64
    analysis_size: int = 2048
    strip_px: int = 32

    @property
    def ladder(self) -> Ladder:
        return Ladder.parse(list(self.rungs))

    def page(self, image: Image.Image) -> np.ndarray:
        """Question-independent features of one page (computed once per page)."""
        bands = text_bands(image, analysis_size=self.analysis_size, strip_px=self.strip_px)
        native, short = max(image.size), min(image.size)
        heights = bands.heights
        found = heights.size > 0
        percentiles = np.percentile(heights, _PERCENTILES) if found else np.zeros(len(_PERCENTILES))
        kept = []  # per rung, the share of bands at least ``px`` tall once sent at that rung
        for rung in self.ladder.rungs:
            scale = self.ladder.pixels(rung, native) / native
            kept += [float(np.mean(heights * scale >= px)) if found else 0.0 for px in self.legible_px]
        scales = [np.log(self.ladder.pixels(r, native) / native) for r in self.ladder.rungs]
        return np.array(
            [
                *np.log1p(percentiles),
                *kept,
                *scales,
                np.log(native),
                np.log(native / short),
                np.log1p(heights.size),
                np.log1p(bands.stroke),
                bands.ink,
                float(not found),
                _colourfulness(image),
            ]
        )

    def question(self, question: str) -> np.ndarray:
        """Hashed words of the question; the quoted words also in bins of their own."""
        vector = np.zeros(2 * self.question_buckets)
        text = question.lower()
        for word in _WORD.findall(text):
            vector[_bucket(word, self.question_buckets)] = 1.0
        for quoted in _QUOTED.findall(text):
            for word in _WORD.findall(quoted):
                vector[self.question_buckets + _bucket(word, self.question_buckets)] = 1.0
        return vector

    def vector(self, page: np.ndarray, question: str) -> np.ndarray:
        return np.concatenate([page, self.question(question)])


def _bucket(word: str, buckets: int) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little") % buckets


def _colourfulness(image: Image.Image) -> float:
    """Mean spread between the RGB channels of a 64 px thumbnail (0 for a grey scan)."""
    if image.mode in ("1", "L", "LA", "I", "I;16", "F"):
        return 0.0
    thumb = np.asarray(image.convert("RGB").reduce(max(1, max(image.size) // 64)), dtype=np.float64)
    return float((thumb.max(axis=2) - thumb.min(axis=2)).mean() / 255.0)


@dataclass
class DocsHead:
    """Standardise, then one logistic model per rung below the top: P(the downstream answers at it)."""

    mean: list[float]
    scale: list[float]
    coef: list[list[float]]  # one row per rung below the top
    intercept: list[float]
    threshold: float
    extra: dict[str, Any] = field(default_factory=dict)  # training facts kept with the head

    def answers(self, vectors: np.ndarray) -> np.ndarray:
        """Per row, P(answered) at each rung, made non-decreasing up the ladder; the top rung is 1."""
        z = (vectors - np.asarray(self.mean)) / np.asarray(self.scale)
        logits = z @ np.asarray(self.coef).T + np.asarray(self.intercept)
        below = np.maximum.accumulate(1.0 / (1.0 + np.exp(-logits)), axis=1)
        return np.concatenate([below, np.ones((len(vectors), 1))], axis=1)

    def choose(self, answers: np.ndarray) -> np.ndarray:
        return first_reaching(answers, self.threshold)


def first_reaching(answers: np.ndarray, threshold: float) -> np.ndarray:
    """Per row, the cheapest class whose P(answered) reaches ``threshold`` (the top one always does)."""
    return np.asarray(np.argmax(answers >= threshold, axis=1))


class DocsGate(GateBasics):
    """A trained :class:`DocsHead` over :class:`DocsFeatures` (module docstring)."""

    needs_pixels = True

    def __init__(
        self,
        features: DocsFeatures,
        head: DocsHead,
        *,
        policy: str | FamilyPolicy | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        self.features, self.head = features, head
        self.ladder = features.ladder
        if len(head.coef) != len(self.ladder) - 1 or len(head.intercept) != len(self.ladder) - 1:
            raise ConfigError(f"a docs head needs {len(self.ladder) - 1} rung models, has {len(head.coef)}")
        self.policy = get_policy(policy) if isinstance(policy, str) else policy
        names = list(class_names or [str(r) for r in self.ladder.rungs])
        self.config = SimpleNamespace(class_names=names, num_classes=len(self.ladder))

    def predict_batch(self, images: Sequence[ImageInput], questions: Sequence[str]) -> list[GateDecision]:
        if isinstance(questions, str) or len(images) != len(questions):
            raise InputError("images and questions must be sequences of the same length")
        pages = [load_image(image) for image in images]
        page_rows: dict[int, np.ndarray] = {}  # the same page object asked several questions: one analysis
        vectors = np.stack(
            [
                self.features.vector(page_rows.setdefault(id(page), self.features.page(page)), question)
                for page, question in zip(pages, questions)
            ]
        )
        answers = self.head.answers(vectors)
        decisions = []
        for page, row, label in zip(pages, answers, self.head.choose(answers)):
            label = upgrade_at_equal_cost(int(label), self.ladder, self.policy, page.size)
            probabilities = np.diff(row, prepend=0.0)
            decisions.append(
                GateDecision(
                    label,
                    self.ladder[label],
                    tuple(float(p) for p in probabilities),
                    self.ladder.expected_resolution(probabilities.tolist(), max(page.size)),
                    self.config.class_names[label],
                )
            )
        return decisions

    # ------------------------------------------------------------------ files
    def save_pretrained(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {"gate_type": GATE_TYPE, "class_names": self.class_names, "features": asdict(self.features)}
        (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        (directory / HEAD_FILE).write_text(json.dumps(asdict(self.head), indent=1) + "\n", encoding="utf-8")
        return directory

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, *, ladder: str | Ladder | None = None, policy: str | FamilyPolicy | None = None
    ) -> DocsGate:
        """Load a saved gate. ``ladder``, when given, must be the one it was trained for (a head has
        one model per rung: it cannot choose among others)."""
        directory = Path(directory)
        try:
            config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
            head = DocsHead(**json.loads((directory / HEAD_FILE).read_text(encoding="utf-8")))
            saved = config["features"]
            features = DocsFeatures(
                **{**saved, "rungs": tuple(saved["rungs"]), "legible_px": tuple(saved["legible_px"])}
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise GateLoadError(f"{directory}: not a readable docs gate ({exc})", path=str(directory)) from exc
        if ladder is not None and Ladder.parse(ladder).rungs != features.ladder.rungs:
            raise ConfigError(
                f"{directory}: this docs gate was trained for the ladder {features.ladder.spec()}, "
                f"not {Ladder.parse(ladder).spec()}"
            )
        return cls(features, head, policy=policy, class_names=config.get("class_names"))
