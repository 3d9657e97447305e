"""CARES labels: the smallest resolution at which the downstream still answers (RESEARCH.md 1.1).

For scores ``u`` at the ladder's rungs, cheapest first, the label is the smallest rung ``r`` with
``u_r >= tau`` and ``max(u_r' - u_r for r' above r) <= delta``; if none qualifies, the top class.
(The reference code implements ``tau`` only; ``delta=None`` does the same.)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from ..errors import ConfigError
from ..ladder import Ladder
from .datasets import Sample, write_samples
from .scoring import score
from .sweep import Sweep, rung_key

__all__ = ["assign_label", "label_samples"]


def assign_label(scores: Sequence[float], tau: float = 0.85, delta: float | None = 0.1) -> int:
    if not scores:
        raise ConfigError("no scores to label")
    for k, value in enumerate(scores):
        if value < tau:
            continue
        if delta is None or all(higher - value <= delta for higher in scores[k + 1 :]):
            return k
    return len(scores) - 1


def label_samples(
    samples: Sequence[Sample],
    sweep: Sweep,
    ladder: Ladder,
    out: str | Path,
    *,
    metric: str = "anls",
    tau: float = 0.85,
    delta: float | None = 0.1,
) -> dict[str, Any]:
    """Run the sweep for every rung, then write ``out`` (JSONL: each sample with ``label`` and its
    per-resolution ``runs``). Samples with a failed run are left out and counted; a rerun retries them."""
    sweep.run(samples, ladder.rungs, desc="label")
    out = Path(out)
    labeled, counts, incomplete = [], [0] * len(ladder), []
    for sample in samples:
        found = [sweep.stored(sample.id, r) for r in ladder.rungs]
        if any(run is None for run in found):
            incomplete.append(sample.id)
            continue
        runs = cast(list[dict[str, Any]], found)  # every run there
        scores = [score(metric, run["answer"], sample.answers) for run in runs]
        label = assign_label(scores, tau, delta)
        counts[label] += 1
        row = Sample(sample.id, _image_path(sample, out), sample.question, sample.answers, label, dict(sample.meta))
        row.meta["runs"] = {
            rung_key(r): {"answer": run["answer"], "score": round(s, 4), "visual_tokens": run.get("visual_tokens")}
            for r, run, s in zip(ladder.rungs, runs, scores)
        }
        labeled.append(row)
    write_samples(labeled, out)
    return {
        "labeled": len(labeled),
        "incomplete": incomplete,
        "class_counts": dict(zip([rung_key(r) for r in ladder.rungs], counts)),
        "downstream_calls": sweep.calls,
        "failures": len(sweep.failures),
        "out": str(out),
    }


def _image_path(sample: Sample, out: Path) -> Path:
    """A path for the labels file: decoded images (Hugging Face datasets) are saved next to it."""
    if isinstance(sample.image, (str, Path)):
        return Path(sample.image)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", sample.id)
    path = out.with_name(out.name + ".images") / f"{name}.png"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        sample.image.save(path)
    return path
