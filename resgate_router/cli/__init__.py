"""The ``resgate`` command: one argparse subcommand per module, heavy imports inside ``main``."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from ..errors import ResgateError
from . import bench, demo, evaluate, export, label, route, serve, train

__all__ = ["main", "build_parser"]

_COMMANDS = {
    "route": route,
    "demo": demo,
    "serve": serve,
    "label": label,
    "bench": bench,
    "train": train,
    "evaluate": evaluate,
    "export": export,
}


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="resgate", description="Resolution gating for vision-language models.")
    parser.add_argument("--version", action="version", version=f"resgate-router {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in _COMMANDS.items():
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_cli_args(command)
        command.set_defaults(run=module.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["resgate", *argv])  # recorded with results
    try:
        return int(args.run(args) or 0)
    except ResgateError as exc:
        print(f"resgate {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
