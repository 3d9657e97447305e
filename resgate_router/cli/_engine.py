"""``--engine local|ray`` and the Ray flags, shared by label, bench and train."""

from __future__ import annotations

import argparse
from typing import Any


def add_engine_args(parser: argparse.ArgumentParser, work: str) -> None:
    group = parser.add_argument_group("engine")
    group.add_argument(
        "--engine",
        default="local",
        choices=["local", "ray"],
        help=f"where {work} runs: this process (local) or a Ray actor pool (the ray extra)",
    )
    group.add_argument(
        "--ray-address", default=None, help="Ray cluster to join (e.g. ray://head:10001; default: a local instance)"
    )
    group.add_argument(
        "--ray-actors",
        type=int,
        default=None,
        help="actors in the pool (default: one per GPU for hf/vllm engines and backbones, else one per CPU)",
    )
    group.add_argument(
        "--ray-gpus-per-actor",
        type=float,
        default=None,
        help="GPUs per actor (default: 1 for hf/vllm engines and backbones when the cluster has GPUs, else 0)",
    )


def ray_options(args: argparse.Namespace) -> Any:
    """The :class:`~resgate_router.tools.ray_engine.RayOptions` of ``--engine ray`` (None: local);
    Ray flags without ``--engine ray`` are an error, not ignored."""
    from ..errors import ConfigError

    given = [f for f in ("ray_address", "ray_actors", "ray_gpus_per_actor") if getattr(args, f) is not None]
    if args.engine != "ray":
        if given:
            raise ConfigError(f"--{given[0].replace('_', '-')} needs --engine ray")
        return None
    from .._extras import require

    require("ray", "ray")
    from ..tools.ray_engine import RayOptions

    return RayOptions(args.ray_address, args.ray_actors, args.ray_gpus_per_actor)
