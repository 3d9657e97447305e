"""Settings of the proxy and the vLLM plugin: flags > environment (``RESGATE_*``) > a JSON file > defaults."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["GateSettings", "ServerSettings", "load_settings"]


class GateSettings(BaseSettings):
    """How requests are gated and routed: shared by the proxy and the vLLM plugin."""

    model_config = SettingsConfigDict(env_prefix="RESGATE_", extra="forbid")

    gate: str | None = Field(
        default=None, description="gate directory (MLP or ONNX), Hub id or legibility (None: only forced classes)"
    )
    fixed_class: int | None = Field(default=None, description="constant decision instead of a gate (benchmarks, A/B)")
    family: str | None = None
    model: str | None = Field(default=None, description="downstream model dir or Hub id (processor config, family)")
    ladder: str | None = None
    mode: str = "discrete"
    device: str | None = None
    gate_compile: bool | None = Field(
        default=None, description="SmolVLM gates: torch.compile at fixed batch buckets (CUDA graphs on a GPU)"
    )
    on_gate_error: str = "baseline"
    gate_timeout_s: float | None = None
    max_image_pixels: int = Field(default=40_000_000, ge=1)
    pre_resize: bool = Field(default=True, description="idefics3: also shrink images (False: processor setting only)")
    log_path: str | None = None
    allow_remote_images: bool = Field(default=False, description="fetch http(s) image URLs to gate them")
    allow_private_networks: bool = Field(default=False, description="let remote image URLs reach non-public addresses")
    remote_image_timeout_s: float = 5.0
    remote_image_max_bytes: int = 20 * 1024 * 1024
    gate_max_batch: int = Field(default=16, ge=1, description="images per batched gate call")
    gate_max_wait_ms: float = Field(default=5.0, ge=0, description="how long a request waits to share a gate call")


class ServerSettings(GateSettings):
    """The proxy's settings: the gate's plus the upstream, the listener and the limits."""

    upstream: str = Field(description="OpenAI-compatible base URL, e.g. http://vllm:8000/v1")
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    # longer than the idle timeouts of clients and load balancers in front (httpx 5 s, AWS ALB 60 s), so
    # they drop an idle connection first: else one can reuse a connection as the proxy closes it (a
    # reset request, never seen by the proxy). uvicorn's own default is 5 s.
    keep_alive_s: int = Field(default=75, ge=1, description="idle keep-alive timeout of client connections")
    upstream_timeout_s: float = 120.0
    upstream_retries: int = 2
    send_processor_kwargs: bool = True


def load_settings(config_file: str | None = None, **flags: Any) -> ServerSettings:
    """Settings with precedence flags > ``RESGATE_*`` environment > JSON ``config_file`` > defaults."""
    from pydantic_settings import JsonConfigSettingsSource, PydanticBaseSettingsSource

    class _FromFile(ServerSettings):
        model_config = SettingsConfigDict(env_prefix="RESGATE_", extra="forbid", json_file=config_file)

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return init_settings, env_settings, JsonConfigSettingsSource(settings_cls)

    values = _FromFile(**{k: v for k, v in flags.items() if v is not None})
    return ServerSettings.model_construct(**values.model_dump())
