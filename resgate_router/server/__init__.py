"""The OpenAI-compatible proxy (extra ``server``): ``create_app(ServerSettings(...))``."""

from .app import create_app
from .routing import build_router
from .settings import GateSettings, ServerSettings

__all__ = ["create_app", "build_router", "GateSettings", "ServerSettings"]
