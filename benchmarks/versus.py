"""Run one benchmark suite against this checkout and against another one (a second worktree, e.g. the
previous commit), alternately, in the same run and against one shared vLLM server: the suite's code
is this checkout's, the package under test is each tree's.

    git worktree add /tmp/prev HEAD~1
    python -m benchmarks.versus --baseline /tmp/prev --rounds 3 --output-json out.json -- \\
        proxy_overhead --requests 200 --gate tiny --concurrency 16

The baseline tree gets a ``resgate_router/adapters`` link to its ``adapters/`` (the package maps that
directory there when installed), so nothing of this checkout leaks into it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ._common import environment, write_json

HERE = Path(__file__).resolve().parent


def _run(tree: Path, suite: list[str], base_url: str, out: Path) -> dict:
    """The suite (this checkout's code) with ``tree``'s package first on the path."""
    with tempfile.TemporaryDirectory() as cwd:
        (Path(cwd) / "benchmarks").symlink_to(HERE)
        env = {**os.environ, "PYTHONPATH": str(tree)}
        command = [sys.executable, "-m", f"benchmarks.{suite[0]}", *suite[1:], "--base-url", base_url]
        subprocess.run([*command, "--output-json", str(out)], cwd=cwd, env=env, check=True)
    return json.loads(out.read_text())


def _git_sha(tree: Path) -> str:
    command = ["git", "rev-parse", "--short", "HEAD"]
    return subprocess.run(command, cwd=tree, capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, type=Path, help="the other checkout (a worktree)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="tiny-smolvlm")
    parser.add_argument("--output-json", default=None)
    parser.add_argument("suite", nargs=argparse.REMAINDER, help="-- SUITE [its arguments]")
    args = parser.parse_args()
    suite = args.suite[1:] if args.suite[:1] == ["--"] else args.suite
    baseline, current = args.baseline.resolve(), HERE.parent
    link = baseline / "resgate_router" / "adapters"
    if not link.exists():
        link.symlink_to(Path("..") / "adapters")
    from resgate_router.testing import build_tiny_smolvlm
    from resgate_router.tools.servers import vllm_server

    trees = {"baseline": baseline, "current": current}
    results: dict = {"env": environment("cpu"), "suite": suite, "git": {k: _git_sha(t) for k, t in trees.items()}}
    results["rounds"] = []
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        url = stack.enter_context(
            vllm_server(build_tiny_smolvlm(tmp / "model"), served_model_name=args.model, engine_in_process=True)
        )
        for index in range(args.rounds):
            round_ = {name: _run(tree, suite, url, tmp / f"{name}-{index}.json") for name, tree in trees.items()}
            results["rounds"].append(round_)
    write_json(args.output_json, results)


if __name__ == "__main__":
    main()
