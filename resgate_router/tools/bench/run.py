"""``run_bench``: score, cost and latency of every gate on one data set, from one cached sweep.

The downstream runs once per (item, resolution) (:class:`~resgate_router.sweep.Sweep`, cached and
resumable); every gate is then a choice of one cached run per item, so adding a gate to a finished
benchmark costs only the gate.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from tqdm.auto import tqdm

from ...errors import ConfigError
from ...gate.loading import load_gate
from ...ladder import FULL, Ladder, Rung
from ...policies import FamilyPolicy
from ..datasets import Sample
from ..scoring import score
from ..sweep import Sweep, rung_key
from .gates import GateChoices, fixed_rung, oracle_choices, parse_gate_spec, run_gate

__all__ = ["BenchResult", "run_bench", "bootstrap_ci"]


@dataclass
class BenchResult:
    gates: dict[str, dict[str, Any]]
    items: int
    failed_items: list[str]
    reference_fixed: str | None  # the cheapest fixed gate within the tolerance of native
    extra_families: list[str] = field(default_factory=list)
    downstream_calls: int = 0


def bootstrap_ci(values: Sequence[float], *, resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean."""
    data = np.asarray(values, dtype=float)
    if len(data) == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(resamples, len(data)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def run_bench(
    samples: Sequence[Sample],
    sweep: Sweep,
    gate_specs: Sequence[str],
    ladder: Ladder,
    *,
    metric: str,
    extra_metrics: Sequence[str] = (),
    cost: Any = None,
    extra_policies: dict[str, FamilyPolicy] | None = None,
    tolerance: float = 0.01,
    progress: bool = True,
) -> BenchResult:
    kinds = {spec: parse_gate_spec(spec) for spec in gate_specs}
    gates = {  # loaded before the sweep: a bad gate fails before hours of downstream work
        spec: load_gate(spec, ladder=ladder, policy=sweep.policy)
        for spec, kind in kinds.items()
        if kind in ("legibility", "directory")
    }
    resolutions: list[Rung] = list(ladder.rungs)
    for spec, kind in kinds.items():
        rung = fixed_rung(spec) if kind == "fixed" else FULL if kind == "native" else None
        if rung is not None and rung not in resolutions:
            resolutions.append(rung)
    sweep.run(samples, resolutions, desc="downstream")

    keys = [rung_key(r) for r in resolutions]
    runs, kept, failed = [], [], []
    for sample in samples:
        row = {key: sweep.stored(sample.id, key) for key in keys}
        if any(run is None for run in row.values()):
            failed.append(sample.id)
        else:
            kept.append(sample)
            runs.append(cast(dict[str, dict[str, Any]], row))  # every run there
    if not kept:
        raise ConfigError("no item has a downstream answer at every resolution; see the warnings above")

    natives = [tuple(next(iter(row.values()))["native"]) for row in runs]  # every stored run records it
    metrics = [metric, *[m for m in extra_metrics if m != metric]]
    scores = {
        m: [{k: score(m, row[k]["answer"], s.answers) for k in keys} for s, row in zip(kept, runs)] for m in metrics
    }
    policy, families = sweep.policy, {sweep.policy.name: sweep.policy, **(extra_policies or {})}
    plans = {
        family: [{k: p.plan([size], [r]).images[0] for k, r in zip(keys, resolutions)} for size in natives]
        for family, p in families.items()
    }

    ladder_keys = [rung_key(r) for r in ladder.rungs]
    oracle = oracle_choices(
        ladder,
        [[row[k] for k in ladder_keys] for row in scores[metric]],
        [[plan[k].tokens for k in ladder_keys] for plan in plans[policy.name]],
    )
    choices: dict[str, GateChoices] = {}
    bar = tqdm(total=len(kept) * len(gates), desc="gates", unit="item", disable=not progress or not gates)
    for spec, kind in kinds.items():
        if kind == "fixed":
            choices[spec] = GateChoices(spec, [fixed_rung(spec)] * len(kept))
        elif kind == "native":
            choices[spec] = GateChoices(spec, [FULL] * len(kept))
        elif kind == "oracle":
            choices[spec] = GateChoices(spec, [ladder[k] for k in oracle], oracle)
        else:
            choices[spec] = run_gate(spec, gates[spec], kept, progress=bar.update)
    bar.close()

    native_tokens = {
        f: statistics.fmean(plan[FULL].tokens for plan in plans[f]) if FULL in keys else None for f in families
    }
    summary = {}
    for spec, choice in choices.items():
        picked = [rung_key(r) for r in choice.rungs]
        primary = [row[k] for row, k in zip(scores[metric], picked)]
        low, high = bootstrap_ci(primary)
        chosen_plans = [plan[k] for plan, k in zip(plans[policy.name], picked)]
        tokens = statistics.fmean(p.tokens for p in chosen_plans)
        latencies = [  # runs a memoizing downstream answered from its memo took no downstream time
            row[k]["latency_ms"]
            for row, k in zip(runs, picked)
            if row[k].get("latency_ms") is not None and not row[k].get("cached")
        ]
        ttfts = [row[k]["ttft_ms"] for row, k in zip(runs, picked) if row[k].get("ttft_ms") is not None]
        entry: dict[str, Any] = {
            "score": round(statistics.fmean(primary), 4),
            "score_ci95": [round(low, 4), round(high, 4)],
            "visual_tokens": round(tokens, 1),
            "saved_vs_native": _saved(tokens, native_tokens[policy.name]),
            "scores_by_metric": {
                m: round(statistics.fmean(row[k] for row, k in zip(scores[m], picked)), 4) for m in metrics
            },
            "latency_ms_median": median_or_none(latencies),
            "latency_ms_p95": round(float(np.percentile(latencies, 95)), 2) if latencies else None,
            "ttft_ms_median": median_or_none(ttfts),
            "gate_ms_median": median_or_none(choice.gate_ms),
            "gate_ms_p95": round(float(np.percentile(choice.gate_ms, 95)), 2) if choice.gate_ms else None,
            **_gate_cost_ratio(runs, picked, rung_key(FULL) if FULL in resolutions else None, choice.gate_ms),
            "class_mix": {
                k: round(picked.count(k) / len(picked), 4) for k in dict.fromkeys(sorted(set(picked), key=keys.index))
            },
        }
        if cost is not None:
            flops = statistics.fmean(cost.prefill_flops(p.tokens, p.tiles) for p in chosen_plans)
            native_flops = (
                statistics.fmean(cost.prefill_flops(pl[FULL].tokens, pl[FULL].tiles) for pl in plans[policy.name])
                if FULL in keys
                else None
            )
            entry["prefill_gflops"] = round(flops / 1e9, 3)
            entry["flops_saved_vs_native"] = _saved(flops, native_flops)
        if choice.per_request and spec != "oracle":
            entry.update(_against_oracle(choice.classes or [], oracle, ladder))
        entry["accounting"] = {
            family: {
                "visual_tokens": round(statistics.fmean(plan[k].tokens for plan, k in zip(plans[family], picked)), 1),
                "saved_vs_native": _saved(
                    statistics.fmean(plan[k].tokens for plan, k in zip(plans[family], picked)), native_tokens[family]
                ),
            }
            for family in families
        }
        summary[spec] = entry

    reference = _reference_fixed(summary, kinds, tolerance)
    if reference is not None:
        oracle_tokens = statistics.fmean(plan[ladder_keys[k]].tokens for plan, k in zip(plans[policy.name], oracle))
        span = summary[reference]["visual_tokens"] - oracle_tokens
        for spec, entry in summary.items():
            if kinds[spec] in ("legibility", "directory"):
                entry["vs_reference_fixed"] = _saved(entry["visual_tokens"], summary[reference]["visual_tokens"])
                entry["oracle_savings_captured"] = (
                    round((summary[reference]["visual_tokens"] - entry["visual_tokens"]) / span, 4)
                    if span > 0
                    else None
                )
    return BenchResult(summary, len(kept), failed, reference, list(extra_policies or {}), sweep.calls)


def _gate_cost_ratio(
    runs: Sequence[dict[str, Any]], picked: Sequence[str], native: str | None, gate_ms: Sequence[float]
) -> dict[str, Any]:
    """What the gate costs per request against the downstream time its choices save: the mean over
    items of (native's time - the chosen rung's time), from TTFT (the prefill) when every pair has one,
    else from the whole downstream call; ``gate_cost_ratio`` = mean gate ms / that."""
    if native is None:
        return {}
    pairs = [(row[native], row[k]) for row, k in zip(runs, picked)]
    basis = "ttft_ms" if all(a.get("ttft_ms") is not None and b.get("ttft_ms") is not None for a, b in pairs) else None
    if basis is None:
        basis = "latency_ms"
        pairs = [(a, b) for a, b in pairs if a.get(basis) is not None and b.get(basis) is not None]
        pairs = [(a, b) for a, b in pairs if not a.get("cached") and not b.get("cached")]
    if not pairs:
        return {}
    saved = statistics.fmean(a[basis] - b[basis] for a, b in pairs)
    ratio = statistics.fmean(gate_ms) / saved if gate_ms and saved > 0 else None
    return {
        "downstream_ms_saved": round(saved, 2),
        "saved_from": basis,
        "gate_cost_ratio": round(ratio, 4) if ratio is not None else None,
    }


def median_or_none(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def _saved(value: float, native: float | None) -> float | None:
    return round(1.0 - value / native, 4) if native else None


def _against_oracle(classes: Sequence[int], oracle: Sequence[int], ladder: Ladder) -> dict[str, Any]:
    """How often the gate picks the oracle's class, overall and per oracle class."""
    per_class = {}
    for k, rung in enumerate(ladder.rungs):
        mine = [c for c, o in zip(classes, oracle) if o == k]
        per_class[rung_key(rung)] = {
            "items": len(mine),
            "accuracy": round(sum(c == k for c in mine) / len(mine), 4) if mine else None,
        }
    return {
        "oracle_agreement": round(sum(c == o for c, o in zip(classes, oracle)) / len(classes), 4),
        "per_class_accuracy": per_class,
        "below_oracle": round(sum(c < o for c, o in zip(classes, oracle)) / len(classes), 4),
        "above_oracle": round(sum(c > o for c, o in zip(classes, oracle)) / len(classes), 4),
    }


def _reference_fixed(summary: dict[str, dict[str, Any]], kinds: dict[str, str], tolerance: float) -> str | None:
    native = next((s for s, k in kinds.items() if k == "native"), None)
    if native is None:
        return None
    floor = summary[native]["score"] - tolerance
    candidates = [s for s, k in kinds.items() if k in ("fixed", "native") and summary[s]["score"] >= floor]
    return min(candidates, key=lambda s: summary[s]["visual_tokens"]) if candidates else None
