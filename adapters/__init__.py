"""Downstream adapters, installed as ``resgate_router.adapters``."""

from .base import Adapter, CallableAdapter

__all__ = ["Adapter", "CallableAdapter"]
