"""What each benchmarked gate picks, per item: a rung (px or ``full``) and, for ladder gates, a class.

* ``fixed:N``: every item at N px (the downstream's own processing of an N-px image);
* ``native``: every item as is (the ``full`` rung: the downstream's default processing);
* ``oracle``: per item, the cheapest ladder rung that scores as well as the best one (from the
  per-resolution results: the upper bound of any gate on this ladder);
* ``legibility`` or a gate directory (any kind :func:`~resgate_router.gate.loading.load_gate` reads):
  a gate run on each (image, question), its class mapped through the ladder.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...errors import ConfigError
from ...ladder import FULL, Ladder, Rung
from ..datasets import Sample

__all__ = ["GateChoices", "parse_gate_spec", "fixed_rung", "oracle_choices", "run_gate"]


@dataclass
class GateChoices:
    name: str
    rungs: list[Rung]  # one per item
    classes: list[int] | None = None  # ladder class per item (ladder gates and the oracle)
    gate_ms: list[float] = field(default_factory=list)  # per item, for gates that run a model

    @property
    def per_request(self) -> bool:
        return self.classes is not None


def parse_gate_spec(spec: str) -> str:
    """``fixed:N``, ``native``, ``oracle``, ``legibility`` or a path; returns its kind."""
    if spec in ("native", "oracle", "legibility"):
        return spec
    if spec.startswith("fixed:"):
        fixed_rung(spec)
        return "fixed"
    return "directory"


def fixed_rung(spec: str) -> Rung:
    value = spec.partition(":")[2].strip().lower()
    if value == FULL:
        return FULL
    if not value.isdigit() or int(value) <= 0:
        raise ConfigError(f"invalid gate {spec!r}: use fixed:N with N a positive number of px, e.g. fixed:512")
    return int(value)


def oracle_choices(ladder: Ladder, scores: Sequence[Sequence[float]], tokens: Sequence[Sequence[int]]) -> list[int]:
    """Per item (rows: one score and one token count per ladder rung), the cheapest class that scores
    as well as the best one; ties in cost go to the lower rung."""
    classes = []
    for row, costs in zip(scores, tokens):
        best = max(row)
        good = [k for k in range(len(ladder)) if row[k] >= best]
        classes.append(min(good, key=lambda k: (costs[k], k)))
    return classes


def run_gate(
    name: str, gate: Any, samples: Sequence[Sample], *, progress: Callable[[int], None] | None = None
) -> GateChoices:
    """Run ``gate`` on every item, one at a time so its per-item overhead is measured."""
    classes, rungs, gate_ms = [], [], []
    for sample in samples:
        started = time.perf_counter()
        decision = gate.predict(sample.image, sample.question)
        gate_ms.append((time.perf_counter() - started) * 1000)
        classes.append(decision.label)
        rungs.append(gate.ladder[decision.label])
        if progress is not None:
            progress(1)
    return GateChoices(name, rungs, classes, gate_ms)
