"""Peak resident memory of one gate alone in a fresh process (``gate_latency --peak-rss``): the
PyTorch gate, and the ONNX ones with torch and transformers imports blocked (they must not need them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ._common import median

__all__ = ["peak_rss", "probe"]


_PROBE = """
import importlib.abc, json, sys
if sys.argv[1] != "fast-single-tile":  # the ONNX gate must not need torch: block it
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"torch", "transformers"}:
                raise ImportError(f"blocked: {name}")
    sys.meta_path.insert(0, Block())
from benchmarks.peak_rss import probe
print(json.dumps(probe(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
"""


def probe(variant: str, path: str, runs: int) -> dict:
    """Run in a fresh process: load one gate, predict ``runs`` times, report peak RSS (MiB)."""
    import time

    from resgate_router.testing import make_document_image

    started = time.perf_counter()
    if variant == "fast-single-tile":
        from resgate_router.gate import SmolVLMGate

        gate = SmolVLMGate.from_pretrained(path, device="cpu", dtype="float32")
    else:
        from resgate_router.gate.onnx import OnnxGate

        gate = OnnxGate.from_pretrained(path, precision=variant.removeprefix("onnx-"))
    load_s = time.perf_counter() - started
    from .gate_latency import QUESTION

    image, times = make_document_image(1700, 2200, lines=60, seed=1), []
    for _ in range(runs):
        started = time.perf_counter()
        gate.predict(image, QUESTION)
        times.append((time.perf_counter() - started) * 1000)
    return {
        "variant": variant,
        "peak_rss_mib": round(_peak_rss_kib() / 1024, 1),
        "load_s": round(load_s, 2),
        "predict_median_ms": round(median(times), 2),
        "torch_imported": "torch" in sys.modules,
    }


def _peak_rss_kib() -> int:
    """This process's peak RSS: VmHWM, which (unlike ru_maxrss) does not keep the forking parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def peak_rss(paths: dict[str, Path], runs: int) -> list[dict]:
    """Each gate (variant -> saved gate) alone in a fresh process: its peak RSS, load and predict times."""
    rows = []
    for variant, path in paths.items():
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, variant, str(path), str(runs)], capture_output=True, text=True, check=True
        )
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    torch_row = next((r for r in rows if r["variant"] == "fast-single-tile"), None)
    for row in rows:
        row["rss_vs_torch"] = round(row["peak_rss_mib"] / torch_row["peak_rss_mib"], 3) if torch_row else None
        print(
            f"peak RSS  {row['variant']:<17} {row['peak_rss_mib']:8.0f} MiB (load {row['load_s']:.1f} s, predict "
            f"{row['predict_median_ms']:.0f} ms, torch imported: {row['torch_imported']})"
            + (f"  {row['rss_vs_torch']:.2f} x PyTorch" if torch_row else ""),
            flush=True,
        )
    return rows
