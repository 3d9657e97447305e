"""Accuracy and visual tokens per question type of the gates of a ``resgate bench`` run on a data set
with a ``qtype`` field, scored from the bench's cached answers (no downstream call is made).

    python -m benchmarks.per_question_type --data ../shared/data/realdocs/qa.jsonl \\
        --answers .cache/bench-realdocs/answers.jsonl
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict

from resgate_router.gate.loading import load_gate
from resgate_router.policies import get_policy
from resgate_router.tools.datasets import load_samples
from resgate_router.tools.scoring import score
from resgate_router.tools.sweep import RunStore

KEYS = ["384", "512", "768", "1024", "full"]
NAMES = ["fixed:1024", "native", "legibility", "builtin:docs", "oracle"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--answers", required=True, help="the bench's answers.jsonl (run store)")
    parser.add_argument("--model", default="ocr", help="the run store's cache key")
    parser.add_argument("--metric", default="contains")
    args = parser.parse_args()
    store, policy = RunStore(args.answers), get_policy("idefics3")
    gates = {name: load_gate(name, ladder=",".join(KEYS), policy=policy) for name in ("legibility", "builtin:docs")}
    table: dict[str, dict[str, list[tuple[float, int]]]] = defaultdict(lambda: defaultdict(list))
    for sample in load_samples(args.data).samples:
        runs = [store.get(sample.id, key, args.model) for key in KEYS]
        if any(run is None for run in runs):
            raise SystemExit(f"{sample.id}: not every rung is in {args.answers}: run resgate bench first")
        scores = [score(args.metric, run["answer"], sample.answers) for run in runs]
        tokens = [run["visual_tokens"] for run in runs]
        best = max(scores)
        oracle = min((k for k in range(len(KEYS)) if scores[k] >= best), key=lambda k: (tokens[k], k))
        picks = {"fixed:1024": 3, "native": 4, "oracle": oracle}
        picks |= {name: gate.predict(sample.image, sample.question).label for name, gate in gates.items()}
        for name, k in picks.items():
            for group in (str(sample.meta.get("qtype", "?")), "all"):
                table[group][name].append((scores[k], tokens[k]))
    print("| question type | items | " + " | ".join(NAMES) + " |")
    print("|---|---:|" + "---|" * len(NAMES))
    for group in sorted(table, key=lambda g: (g == "all", g)):
        cells = [
            f"{100 * statistics.fmean(a for a, _ in table[group][n]):.1f}% / "
            f"{statistics.fmean(t for _, t in table[group][n]):.0f}"
            for n in NAMES
        ]
        print(f"| {group} | {len(table[group]['native'])} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
