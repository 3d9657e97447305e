"""The OpenAI-compatible proxy (extra ``server``): ``create_app(ServerSettings(...))``."""

from .app import create_app
from .settings import ServerSettings

__all__ = ["create_app", "ServerSettings"]
