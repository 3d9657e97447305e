"""The benchmark's three outputs: ``results.json``, ``results.md`` (the tables) and ``pareto.png``."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # run.py pulls in the scoring (rapidfuzz): git_sha and environment need none of it
    from .run import BenchResult

__all__ = ["environment", "git_sha", "write_report"]

_PACKAGES = ("resgate-router", "torch", "transformers", "vllm", "rapidocr-onnxruntime", "onnxruntime", "numpy")


def git_sha() -> str:
    """The checkout's short revision (``GIT_SHA`` wins: set it when running from a copy without .git)."""
    if os.environ.get("GIT_SHA"):
        return os.environ["GIT_SHA"]
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def environment() -> dict[str, Any]:
    """Where and with what a result was measured (package versions read without importing them)."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            pass
    return {
        "git_sha": git_sha(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "device": f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "versions": versions,
    }


def write_report(result: BenchResult, out_dir: str | Path, meta: dict[str, Any]) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        **environment(),
        **meta,
        "items": result.items,
        "failed_items": result.failed_items,
        "downstream_calls": result.downstream_calls,
        "reference_fixed": result.reference_fixed,
        "extra_families": result.extra_families,
        "gates": result.gates,
    }
    paths = {"json": out / "results.json", "md": out / "results.md", "png": out / "pareto.png"}
    paths["json"].write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    paths["md"].write_text(markdown(payload), encoding="utf-8")
    pareto_plot(payload, paths["png"])
    return paths


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def _num(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _fewer(saved: float) -> str:
    return f"{saved * 100:.1f}% fewer tokens" if saved >= 0 else f"{-saved * 100:.1f}% more tokens"


def markdown(payload: dict[str, Any]) -> str:
    gates, family = payload["gates"], payload.get("family", "")
    lines = [
        f"# resgate bench: {payload.get('data', '')}",
        "",
        f"- command: `{payload.get('command', '')}`",
        f"- downstream: {payload.get('downstream', '')}",
        f"- metric: {payload.get('metric')} (mean, bootstrap 95% CI); ladder {payload.get('ladder')}; "
        f"{payload['items']} items"
        + (f", {len(payload['failed_items'])} left out (failed runs)" if payload["failed_items"] else ""),
        f"- token accounting: {family}; git {payload['git_sha']}; {payload['device']}; {payload['date']}",
        "- ms saved / request: native's downstream time minus the chosen rung's, per item (TTFT, the "
        "prefill, when streamed; else the whole call); gate ms / ms saved under 1 means the gate pays for itself",
        "",
        "| gate | score | 95% CI | visual tokens | prefill GFLOPs | saved vs native "
        "| downstream ms (median / p95) | TTFT ms | gate ms (median) | ms saved / request "
        "| gate ms / ms saved | class mix | oracle agreement |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, g in gates.items():
        ci = g["score_ci95"]
        mix = " ".join(f"{k}:{v * 100:.0f}%" for k, v in g["class_mix"].items())
        lines.append(
            f"| {name} | {g['score'] * 100:.1f} | {ci[0] * 100:.1f}–{ci[1] * 100:.1f} | {g['visual_tokens']:.0f} "
            f"| {_num(g.get('prefill_gflops'), 2)} | {_pct(g['saved_vs_native'])} "
            f"| {_num(g['latency_ms_median'])} / {_num(g['latency_ms_p95'])} | {_num(g['ttft_ms_median'])} "
            f"| {_num(g['gate_ms_median'])} | {_num(g.get('downstream_ms_saved'))} "
            f"| {_num(g.get('gate_cost_ratio'), 3)} | {mix} | {_pct(g.get('oracle_agreement'))} |"
        )
    extra_metrics = [m for m in next(iter(gates.values()))["scores_by_metric"] if m != payload.get("metric")]
    if extra_metrics:
        lines += [
            "",
            "Other views of the same answers:",
            "",
            "| gate | " + " | ".join(extra_metrics) + " |",
            "|---|" + "---|" * len(extra_metrics),
        ]
        for name, g in gates.items():
            lines.append(
                f"| {name} | " + " | ".join(f"{g['scores_by_metric'][m] * 100:.1f}" for m in extra_metrics) + " |"
            )
    for other in payload.get("extra_families", []):
        lines += [
            "",
            f"Token accounting for {other} (same choices):",
            "",
            "| gate | visual tokens | saved vs native |",
            "|---|---|---|",
        ]
        for name, g in gates.items():
            a = g["accounting"][other]
            lines.append(f"| {name} | {a['visual_tokens']:.0f} | {_pct(a['saved_vs_native'])} |")
    reference = payload.get("reference_fixed")
    gated = {n: g for n, g in gates.items() if "per_class_accuracy" in g}
    if gated:
        classes = list(next(iter(gated.values()))["per_class_accuracy"])
        lines += [
            "",
            "Gate class vs the oracle's class (of the items whose oracle class is each rung, the share the gate"
            " also puts there):",
            "",
        ]
        lines += [
            "| gate | "
            + " | ".join(f"{c} (n={next(iter(gated.values()))['per_class_accuracy'][c]['items']})" for c in classes)
            + " | below oracle | above oracle |"
        ]
        lines += ["|---|" + "---|" * (len(classes) + 2)]
        for name, g in gated.items():
            cells = [_pct(g["per_class_accuracy"][c]["accuracy"]) for c in classes]
            lines.append(
                f"| {name} | " + " | ".join(cells) + f" | {_pct(g['below_oracle'])} | {_pct(g['above_oracle'])} |"
            )
    if reference:
        lines += [
            "",
            f"Cheapest fixed setting within {payload.get('tolerance', 0.01) * 100:.0f} point of native: "
            f"**{reference}** "
            f"({gates[reference]['visual_tokens']:.0f} tokens).",
        ]
        for name, g in gates.items():
            if "vs_reference_fixed" in g:
                lines.append(
                    f"- {name}: {_fewer(g['vs_reference_fixed'])} than {reference}; captures "
                    f"{_pct(g['oracle_savings_captured']) or 'none'} of the oracle's extra savings; "
                    f"score {(g['score'] - gates.get('native', g)['score']) * 100:+.1f} points vs native."
                )
    return "\n".join(lines) + "\n"


def pareto_plot(payload: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gates = payload["gates"]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    fixed = sorted(
        ((g["visual_tokens"], g["score"]) for n, g in gates.items() if n.startswith("fixed:") or n == "native"),
    )
    if fixed:
        ax.plot(
            [t for t, _ in fixed], [s * 100 for _, s in fixed], "-", color="0.6", label="fixed resolutions", zorder=1
        )
    for name, g in gates.items():
        style: dict[str, Any] = (
            {"marker": "*", "s": 180, "color": "tab:green"} if name == "oracle" else {"marker": "o", "s": 50}
        )
        if "per_class_accuracy" in g:
            style = {"marker": "D", "s": 70, "color": "tab:red"}
        ax.scatter(g["visual_tokens"], g["score"] * 100, zorder=2, **style)
        ax.annotate(
            Path(name).name if "/" in name else name,
            (g["visual_tokens"], g["score"] * 100),
            textcoords="offset points",
            xytext=(5, 4),
            fontsize=8,
        )
    ax.set_xlabel(f"mean visual tokens per item ({payload.get('family', '')})")
    ax.set_ylabel(f"{payload.get('metric')} score (%)")
    ax.set_title(
        f"score vs cost: {Path(str(payload.get('data', ''))).parent.name or payload.get('data', '')}", fontsize=10
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
