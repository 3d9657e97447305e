"""The long fuzzing run of issue 9: the hypothesis targets of tests/test_fuzz.py (image decoding, data
URLs, request parser + router + adapter payload for five families, the proxy over real HTTP), each
for ``--examples`` random examples (CI runs 150 derandomized ones). Records examples tried, outcomes
(typed error / valid result), failures (0 expected) and wall time per target.

    python -m benchmarks.fuzz --examples 5000 --output-json benchmarks/results/fuzz.json
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections import Counter
from collections.abc import Callable
from typing import Any

from ._common import environment, run_cli, write_json


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--examples", type=int, default=5000, help="examples per target")
    parser.add_argument("--targets", default=None, help="comma-separated subset (default: all)")
    parser.add_argument("--output-json", default="benchmarks/results/fuzz.json")


def _run(strategy: Any, check: Callable[[Any], str], examples: int, progress: Any) -> dict[str, Any]:
    from hypothesis import given, settings

    import tests.test_fuzz  # noqa: F401 (registers the fuzz profiles)

    outcomes: Counter[str] = Counter()

    @settings(settings.get_profile("fuzz-long"), max_examples=examples)
    @given(strategy)
    def target(value: Any) -> None:
        outcomes[check(value)] += 1
        progress.update(1)

    failures = []
    started = time.perf_counter()
    try:
        target()
    except Exception as exc:  # a falsifying example: recorded, the other targets still run
        notes = "\n".join(getattr(exc, "__notes__", []))  # the falsifying example hypothesis attached
        failures.append(f"{type(exc).__name__}: {exc}\n{notes}"[:4000])
    return {
        "examples": sum(outcomes.values()),
        "outcomes": dict(outcomes),
        "failures": failures,
        "wall_s": round(time.perf_counter() - started, 1),
    }


def main(args: argparse.Namespace) -> dict[str, Any]:
    # Lazy imports: the targets and their servers load only when the benchmark runs.
    import httpx2
    from hypothesis import strategies as st
    from tqdm import tqdm

    from tests import test_fuzz as fz

    warnings.simplefilter("ignore")  # Pillow's warnings on odd files are not errors outside pytest
    pipeline = fz.RequestPipeline()
    with fz.fuzz_proxy() as (url, _), httpx2.Client(timeout=60) as client:
        targets = {
            "image_decoding": (fz.image_bytes, fz.check_image),
            "data_urls": (fz.string_urls, fz.check_data_url),
            "request_parser_router_payload": (
                st.tuples(fz.requests, st.sampled_from(fz.FAMILIES)),
                lambda pair: pipeline(*pair),
            ),
            "proxy_http": (fz.proxy_bodies, lambda body: fz.check_proxy(client, url, body)),
        }
        chosen = args.targets.split(",") if args.targets else list(targets)
        results = {}
        with tqdm(total=args.examples * len(chosen), desc="fuzz", unit="ex") as progress:
            for name in chosen:
                progress.set_postfix_str(name)
                results[name] = _run(*targets[name], args.examples, progress)
    pipeline.close()
    payload = {
        "env": environment("cpu"),
        "examples_per_target": args.examples,
        "targets": results,
        "examples_total": sum(r["examples"] for r in results.values()),
        "failures_total": sum(len(r["failures"]) for r in results.values()),
    }
    for name, result in results.items():
        failed = len(result["failures"])
        print(
            f"{name:32s} {result['examples']:6d} examples {result['outcomes']} failures {failed} {result['wall_s']} s"
        )
    write_json(args.output_json, payload)
    return payload


if __name__ == "__main__":
    run_cli(__doc__, add_cli_args, main)
