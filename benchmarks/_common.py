"""Shared helpers: timing, environment record, model cache, result files."""

from __future__ import annotations

import base64
import io
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resgate_router.tools.bench.report import git_sha

CACHE = Path(".cache")


def environment(device: str) -> dict[str, Any]:
    import torch
    import transformers

    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else (platform.processor() or platform.machine())
    return {
        "git_sha": git_sha(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "device": device,
        "device_name": name,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "command": " ".join(["python -m benchmarks." + Path(sys.argv[0]).stem, *sys.argv[1:]]),
    }


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def time_ms(fn: Callable[[], object], device: str) -> float:
    synchronize(device)
    started = time.perf_counter()
    fn()
    synchronize(device)
    return (time.perf_counter() - started) * 1000


def median(values: list[float]) -> float:
    return statistics.median(values)


def full_size_backbone(path: Path | None = None) -> Path:
    """The full-size SmolVLM-256M architecture with random weights, built once and cached."""
    from resgate_router.testing import build_smolvlm_256m

    path = path or CACHE / "smolvlm-256m-random"
    if not (path / "config.json").is_file():
        print(f"building the full-size SmolVLM-256M architecture (random weights) in {path} ...", flush=True)
        build_smolvlm_256m(path)
    return path


def png_bytes(image: Any) -> bytes:
    """A PIL image as a client sends it: a PNG with Pillow's default settings. Written here, not by
    the package under test (nor the tree's ``tests``, which ``benchmarks.versus`` puts on the path
    from each tree), so every tree of a comparison reads the same bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png_data_url(image: Any) -> str:
    """:func:`png_bytes` as a data URL."""
    return f"data:image/png;base64,{base64.b64encode(png_bytes(image)).decode('ascii')}"


def write_json(path: str | None, payload: dict[str, Any]) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(payload, indent=2))
        print(f"wrote {path}")


def run_cli(doc: str | None, add_cli_args: Callable[[Any], None], main: Callable[[Any], object]) -> None:
    """The ``__main__`` entry of a benchmark: its docstring as help, its flags, its main."""
    import argparse

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cli_args(parser)
    main(parser.parse_args())
