"""Throughput of ``resgate label`` on the local engine and on a local Ray instance with 1 and 2 CPU
actors (the OCR reader as the downstream), on generated documents.

Each run is a fresh ``resgate label`` process with an empty run store, timed from start to exit, so
a Ray run includes starting its local instance and its actors; that start-up is also timed alone
(``ray_start_s``). Runs of the three engines alternate, ``--rounds`` times; medians are reported.

    python -m benchmarks.ray_label --samples 40 --rounds 3 --output-json benchmarks/results/ray_label.json
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ._common import environment, median, run_cli, write_json

ENGINES = {
    "local": [],
    "ray-1-actor": ["--engine", "ray", "--ray-actors", "1"],
    "ray-2-actors": ["--engine", "ray", "--ray-actors", "2"],
}


def add_cli_args(parser: Any) -> None:
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--ladder", default="384,512,768")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output-json", default=None)


def _label(data: Path, out: Path, ladder: str, samples: int, extra: list[str]) -> float:
    command = [sys.executable, "-m", "resgate_router.cli", "label", "--data", str(data), "--adapter", "ocr"]
    command += ["--metric", "contains", "--ladder", ladder, "--limit", str(samples), "--out", str(out)]
    started = time.perf_counter()
    subprocess.run([*command, "--no-progress", *extra], check=True, capture_output=True, timeout=1800)
    return time.perf_counter() - started


def _ray_start() -> float:
    code = "from resgate_router.tools.ray_engine import init_ray; import ray; init_ray(None); ray.shutdown()"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=600)
    return time.perf_counter() - started


def main(args: Any) -> None:
    from resgate_router.tools.synthetic import generate_documents

    with tempfile.TemporaryDirectory(prefix="resgate-ray-bench-") as tmp:  # documents, stores, labels
        work = Path(tmp)
        pages = max(1, args.samples // 3 + 1)
        data = generate_documents(work / "docs", n=pages, seed=5, kinds=("invoice", "receipt", "form"))
        runs = args.samples * len(args.ladder.split(","))
        seconds: dict[str, list[float]] = {name: [] for name in ENGINES}
        starts = []
        for round_ in range(args.rounds):
            for name, extra in ENGINES.items():
                took = _label(data, work / f"{name}-{round_}" / "labels.jsonl", args.ladder, args.samples, extra)
                seconds[name].append(took)
                print(f"round {round_ + 1}: {name}: {took:.1f} s ({runs / took:.2f} runs/s)", flush=True)
            starts.append(_ray_start())
        outputs = {name: (work / f"{name}-0" / "labels.jsonl").read_bytes() for name in ENGINES}
    results = {
        name: {
            "wall_s": round(median(v), 2),
            "runs_per_s": round(runs / median(v), 3),
            "all_s": [round(x, 2) for x in v],
        }
        for name, v in seconds.items()
    }
    payload = {
        "environment": {**environment("cpu"), "cpus": os.cpu_count()},
        "samples": args.samples,
        "pages": pages,
        "ladder": args.ladder,
        "runs_per_label": runs,
        "rounds": args.rounds,
        "ray_start_s": round(median(starts), 2),
        "labels_identical": len(set(outputs.values())) == 1,
        "engines": results,
    }
    for name, row in results.items():
        print(f"{name}: median {row['wall_s']} s, {row['runs_per_s']} runs/s")
    print(f"ray start alone: {payload['ray_start_s']} s; labels identical: {payload['labels_identical']}")
    write_json(args.output_json, payload)


if __name__ == "__main__":
    run_cli(__doc__, add_cli_args, main)
