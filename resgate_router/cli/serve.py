"""``resgate serve``: the OpenAI-compatible gating proxy on uvicorn."""

from __future__ import annotations

import argparse

HELP = "Run the OpenAI-compatible proxy that gates images before an upstream endpoint."


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--upstream", default=None, help="upstream base URL, e.g. http://localhost:8000/v1")
    parser.add_argument("--gate", default=None, help="gate directory, Hub id, builtin:docs or legibility")
    parser.add_argument("--family", default=None, help="downstream family (default: detected from --model)")
    parser.add_argument("--model", default=None, help="downstream model dir or Hub id (processor config)")
    parser.add_argument("--ladder", default=None)
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--log-path", default=None, help="savings log (JSONL)")
    parser.add_argument("--config", default=None, help="JSON settings file (flags and RESGATE_* env override it)")


def main(args: argparse.Namespace) -> int:
    from .._extras import require

    require("server", "fastapi", "uvicorn", "pydantic_settings")
    import uvicorn
    from pydantic import ValidationError

    from ..errors import ConfigError
    from ..server import create_app
    from ..server.routing import build_router
    from ..server.settings import load_settings

    flags = {k: getattr(args, k) for k in ("upstream", "gate", "family", "model", "ladder", "host", "port", "log_path")}
    try:
        settings = load_settings(args.config, **flags)
    except ValidationError as exc:
        raise ConfigError(f"invalid settings: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from exc
    router = build_router(settings)  # a gate that cannot load fails here, with a one-line error
    print(
        f"resgate proxy: {settings.upstream} <- http://{settings.host}:{settings.port}/v1 "
        f"(family {router.family}, gate {settings.gate or 'none'})"
    )
    uvicorn.run(
        create_app(settings, router=router),
        host=settings.host,
        port=settings.port,
        timeout_graceful_shutdown=30,
        timeout_keep_alive=settings.keep_alive_s,
    )
    return 0
