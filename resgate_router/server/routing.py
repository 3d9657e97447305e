"""Building the router of a deployment from its settings (the proxy's and the vLLM plugin's)."""

from __future__ import annotations

from typing import Any

from ..router import AsyncRouter
from .settings import GateSettings

__all__ = ["build_router"]


def build_router(settings: GateSettings, *, model: str | None = None) -> AsyncRouter:
    """The router a server runs with; the gate loads now, so a bad gate fails start-up, not a request.
    ``model`` (the served model) is used when the settings name none."""
    from ..gate import FixedGate
    from ..policies import get_policy

    model = settings.model or model
    options = {} if settings.pre_resize else {"pre_resize": False}
    policy = get_policy(settings.family, model, **options)
    gate: Any = None
    if settings.fixed_class is not None:
        gate = FixedGate(settings.fixed_class, settings.ladder or "card")
    elif settings.gate:
        from ..gate.loading import load_gate

        gate = load_gate(
            settings.gate,
            ladder=settings.ladder,
            policy=policy,
            device=settings.device,
            compile=settings.gate_compile or None,  # left out unless asked for (other kinds do not take it)
        )
    from ..fetch import AddressPolicy, RemoteImageFetcher

    fetcher = None
    if settings.allow_remote_images:
        fetcher = RemoteImageFetcher(
            timeout=settings.remote_image_timeout_s,
            max_bytes=settings.remote_image_max_bytes,
            allow_private=settings.allow_private_networks,
        )
    return AsyncRouter(
        gate,
        max_batch=settings.gate_max_batch,
        max_wait_ms=settings.gate_max_wait_ms,
        policy=policy,
        ladder=settings.ladder,
        model=model,
        mode=settings.mode,
        on_gate_error=settings.on_gate_error,
        gate_timeout=settings.gate_timeout_s,
        log=settings.log_path,
        allow_local_paths=False,
        on_bad_input="raise",
        fetch_remote=fetcher,
        url_policy=AddressPolicy(allow_private=settings.allow_private_networks),  # also for URLs passed on
        max_pixels=settings.max_image_pixels,
    )
