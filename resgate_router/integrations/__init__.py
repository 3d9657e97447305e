"""Hooks into the servers users already run (LiteLLM's proxy); each needs its extra."""
