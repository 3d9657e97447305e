"""Downstream adapters (vLLM, Hugging Face ``generate``, OpenAI-compatible HTTP), installed as
``resgate_router.adapters``. The adapters themselves arrive with the router (issues 3 and 4)."""
